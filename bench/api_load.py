"""The API under load while workers train (issue 10): reads, submissions, and a queue of 1,000 jobs drained.

The API runs as production runs it (`kerasd api`: its uvicorn processes, access log at info, API keys
required, every tenant's default request rate and quotas) against PostgreSQL and Redis on this machine, with
two workers; the load generator is wrk (Debian's package) on the same machine, at 127.0.0.1 only, each run
bounded in time. Many users, as the goal says: `--tenants` tenants with a key each, every request from the
next tenant in turn, so no tenant exceeds its own rate limit: with the default 50 requests a second a tenant
(bursts of 500), 50 tenants allow 2,500 reads a second; 25 allowed 1,250, which the API now exceeds, and its
answers became 429s. A run with any non-2xx answer does not count as meeting the goal.

1. reads: one worker trains a job (an MLP fit of many epochs) throughout; wrk sends GET /v1/jobs/{id} (each
   tenant's own finished job, with its epoch history) and GET /v1/jobs?status=running, alternating.
   Goal: >= 1,000 requests/s with p99 <= 50 ms. wrk is closed-loop (`--connections` at a time), so the
   figures are the rate the API sustained and the latency each request saw at that rate.
2. submissions: wrk POSTs small fit jobs (one step, run eagerly) for `--submit-s` seconds. Goal: >= 100/s.
3. drain: every job submitted in step 2 (at least 1,000: more are submitted if wrk made fewer) goes through
   the two workers; none may be lost: each must end `succeeded` on its first attempt, and the queues end
   empty. Bounded by `--drain-timeout-s`.

Each wrk figure is a median over `--runs` runs with its range; every non-2xx answer is counted.

    .venv/bin/python bench/api_load.py [--runs 3] [--tenants 50] [--connections 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import scratch_database, server_env
from bench._jobs import median_range, tree_cpu_seconds, upload_arrays
from tests.services import Process, free_port, kerasd_command

TINY_MODEL = {"type": "sequential", "input_shape": [8], "layers": [
    {"class_name": "Dense", "units": 4, "activation": "softmax"}]}
TRAIN_MODEL = {"type": "sequential", "input_shape": [72], "layers": [
    {"class_name": "Dense", "units": 256, "activation": "relu"},
    {"class_name": "Dense", "units": 256, "activation": "relu"},
    {"class_name": "Dense", "units": 10, "activation": "softmax"}]}

# wrk script: requests prepared once (path, method, headers, body) and sent in turn; a JSON summary at the end.
WRK_SCRIPT = """
local requests = {}
local n = 0
local index = 0
function init(args)
  for line in io.lines(args[1]) do
    local method, path, key, body = line:match("^(%S+)\\t(%S+)\\t(%S+)\\t?(.*)$")
    local headers = {["Authorization"] = "Bearer " .. key}
    if body ~= nil and body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
    n = n + 1
    requests[n] = wrk.format(method, path, headers, body)
  end
  index = math.random(n) - 1
end
function request()
  index = index % n + 1
  return requests[index]
end
function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def wrk(base_url: str, lines: list[str], workdir: Path, *, seconds: float, connections: int) -> dict[str, Any]:
    """One bounded wrk run over the prepared requests; its summary (rate per second added)."""
    requests_file = workdir / f"requests-{uuid.uuid4().hex[:6]}.tsv"
    requests_file.write_text("\n".join(lines) + "\n")
    script = workdir / "load.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
                          base_url, "--", str(requests_file)], capture_output=True, text=True,
                         timeout=seconds + 60, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    summary["per_s"] = summary["requests"] / (summary["duration_us"] / 1e6)
    return summary


class Profile:
    """py-spy (from PyPI) recording a process while a phase runs: the profile that shows where time went."""

    def __init__(self, pid: int, out: Path | None, name: str) -> None:
        self.pid, self.out, self.name = pid, out, name
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Profile:
        spy = shutil.which("py-spy") or os.environ.get("PY_SPY")
        if self.out is not None and spy:
            self.out.mkdir(parents=True, exist_ok=True)
            # --gil (PY_SPY_GIL=1): only samples holding the GIL, i.e. Python's own CPU time, not waits.
            gil = ["--gil"] if os.environ.get("PY_SPY_GIL") else []
            # --subprocesses: the uvicorn processes under the supervisor whose pid is given.
            self.process = subprocess.Popen([spy, "record", "--pid", str(self.pid), "--subprocesses", "--rate", "200",
                                             "--format", "raw", *gil, "--nonblocking", "-o",
                                             str(self.out / f"{self.name}.txt")],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(2)
            self.process.wait(timeout=60)
            print(f"  profile of {self.name}: {self.out / (self.name + '.txt')} (collapsed stacks)", flush=True)
            for share, frame in top_frames(self.out / f"{self.name}.txt"):
                print(f"    {share:5.1%}  {frame}")


def top_frames(path: Path, count: int = 25) -> list[tuple[float, str]]:
    """The frames with the most samples anywhere on the stack (inclusive), as shares of all samples."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        total += int(samples)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(samples)
    return [(n / total, frame) for frame, n in inclusive.most_common(count)] if total else []


def make_tenants(count: int) -> list[tuple[str, str]]:
    """(tenant id, key) for `count` tenants with the server's default quotas (as `kerasd admin` makes them)."""
    from app.core.database import session_scope
    from app.tenants import service as tenants

    made = []
    with session_scope() as session:
        for i in range(count):
            tenant = tenants.create_tenant(session, name=f"load-{i}-{uuid.uuid4().hex[:6]}", quotas={})
            _row, key = tenants.create_key(session, tenant=tenant, name="bench", role="user")
            made.append((tenant.id, key))
    return made


def use_database(env: dict[str, str]) -> None:
    """This process reads and writes the scratch database directly (tenants, counts), as the tests do."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("KERASD_")})
    from app.core.database import get_engine, get_sessionmaker
    from app.core.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


def wait_for(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not reach {statuses} in {timeout_s} s")


def tiny_job(model_id: str, dataset_id: str) -> dict[str, Any]:
    return {"model_id": model_id, "artifacts": ["weights.h5"],
            "compile": {"optimizer": "sgd", "loss": "categorical_crossentropy", "run_eagerly": True},
            "fit": {"x": {"dataset_id": dataset_id, "array": "x"}, "y": {"dataset_id": dataset_id, "array": "y"},
                    "epochs": 1, "batch_size": 16}}


def job_counts(job_ids: set[str] | None = None) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.core.database import session_scope
    from app.core.tables import Job

    with session_scope() as session:
        query = select(Job.status, Job.attempt, func.count()).group_by(Job.status, Job.attempt)
        if job_ids is not None:
            query = query.where(Job.id.in_(job_ids))
        return {f"{status}/attempt {attempt}": count for status, attempt, count in session.execute(query)}


def epochs_done(job_id: str) -> int:
    from sqlalchemy import func, select

    from app.core.database import session_scope
    from app.core.tables import EpochLog

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(EpochLog).where(EpochLog.job_id == job_id))


def epoch_rate(job_id: str, seconds: float) -> float:
    before = epochs_done(job_id)
    time.sleep(seconds)
    return (epochs_done(job_id) - before) / seconds


def fit_job_ids() -> set[str]:
    from sqlalchemy import select

    from app.core.database import session_scope
    from app.core.tables import Job

    with session_scope() as session:
        return set(session.scalars(select(Job.id).where(Job.kind == "fit")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=50, help="tenants, a key each: 50, so that none exceeds "
                        "its request rate (KERASD_REQUESTS_PER_S_PER_TENANT, 50 a second) below 2,500 reads a second")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--submit-s", type=float, default=10)
    parser.add_argument("--drain-jobs", type=int, default=1000)
    parser.add_argument("--drain-timeout-s", type=float, default=1200)
    parser.add_argument("--api-workers", type=int, default=2,
                        help="uvicorn processes: 2, as production runs the API (docker-compose.yml, Dockerfile)")
    parser.add_argument("--worker-nice", type=int, default=10, help="KERASD_WORKER_NICE of the two workers: 10, "
                        "as `kerasd up` and compose's CPU workers set it where training shares the API's CPUs")
    parser.add_argument("--profile", type=Path, default=None, help="record the API with py-spy during the last "
                        "read run and the submissions into this directory (py-spy from PyPI on PATH or $PY_SPY)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="kerasd-bench-") as tmp, scratch_database() as database_url, \
            ExitStack() as stack:
        workdir = Path(tmp)
        env = server_env(database_url, workdir / "data", KERASD_AUTH="required")
        env["KERASD_WORKER_NICE"] = str(args.worker_nice)
        print(f"API processes: {args.api_workers}; workers' KERASD_WORKER_NICE={args.worker_nice}", flush=True)
        use_database(env)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = Process(kerasd_command("api", "--host", "127.0.0.1", "--port", str(port),
                                     "--workers", str(args.api_workers)), env, workdir / "api.log")
        stack.callback(api.stop)
        workers = []
        for i in range(2):
            worker = Process(kerasd_command("worker", "--name", f"load{i}-{uuid.uuid4().hex[:6]}@%h"), env,
                             workdir / f"worker{i}.log")
            stack.callback(worker.stop)
            workers.append(worker)
        api.wait_for_http(f"{base_url}/health", timeout_s=120)
        for worker in workers:
            worker.wait_for_log(" ready.", timeout_s=180)
        tenants = make_tenants(args.tenants)

        # Each tenant: a dataset, a model and one finished job (three epochs of history) to read.
        rng = np.random.default_rng(0)
        x = rng.random((64, 8), dtype="float32")
        y = np.eye(4, dtype="float32")[rng.integers(0, 4, 64)]
        per_tenant = []
        for tenant_id, key in tenants:
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
                dataset_id = upload_arrays(c, "tiny.npz", x=x, y=y)
                model = c.post("/v1/models", json=TINY_MODEL)
                model.raise_for_status()
                request = tiny_job(model.json()["id"], dataset_id)
                request["fit"]["epochs"] = 3
                job = c.post("/v1/jobs", json=request)
                job.raise_for_status()
                per_tenant.append({"tenant": tenant_id, "key": key, "model": model.json()["id"],
                                   "dataset": dataset_id, "job": job.json()["id"]})
        first = per_tenant[0]
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {first['key']}"}, timeout=120) as c:
            for item in per_tenant:
                with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {item['key']}"},
                                  timeout=120) as own:
                    assert wait_for(own, item["job"], ("succeeded", "failed"))["status"] == "succeeded"
            # The job a worker trains while the API is under load.
            big = rng.random((50_000, 72), dtype="float32")
            labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 50_000)]
            train_dataset = upload_arrays(c, "train.npz", x=big, y=labels)
            train_model = c.post("/v1/models", json=TRAIN_MODEL).json()["id"]
            training = c.post("/v1/jobs", json={
                "model_id": train_model, "compile": {"optimizer": "adam", "loss": "categorical_crossentropy"},
                "fit": {"x": {"dataset_id": train_dataset, "array": "x"},
                        "y": {"dataset_id": train_dataset, "array": "y"}, "epochs": 10_000, "batch_size": 128}})
            training.raise_for_status()
            training_id = training.json()["id"]
            wait_for(c, training_id, ("running",))
            # What the load costs training: its epochs a second with nothing else asked of the API, first.
            while epochs_done(training_id) < 1:
                time.sleep(0.2)
            idle_rate = epoch_rate(training_id, args.seconds)
            print(f"training alone: {idle_rate:.2f} epochs/s", flush=True)

            reads = []
            for item in per_tenant:
                reads.append(f"GET\t/v1/jobs/{item['job']}\t{item['key']}")
                reads.append(f"GET\t/v1/jobs?status=running\t{item['key']}")
            read_runs = []
            print(f"reads: {len(tenants)} tenants, {args.connections} connections, {args.seconds:g} s a run; "
                  "a worker trains meanwhile", flush=True)
            for run in range(args.runs):
                pids = [api.popen.pid, *(w.popen.pid for w in workers)]
                cpu_before = [tree_cpu_seconds(pid) for pid in pids]
                epochs_before = epochs_done(training_id)
                with Profile(api.popen.pid, args.profile if run == args.runs - 1 else None, "reads"):
                    summary = wrk(base_url, reads, workdir, seconds=args.seconds, connections=args.connections)
                summary["training_epochs_per_s"] = (epochs_done(training_id) - epochs_before) / args.seconds
                cpu = [tree_cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
                summary["cpu"] = {"api": cpu[0] / args.seconds, "workers": sum(cpu[1:]) / args.seconds}
                read_runs.append(summary)
                print(f"  run {run + 1}: {summary['per_s']:,.0f} req/s, p50 {summary['p50_ms']:.1f} ms, "
                      f"p99 {summary['p99_ms']:.1f} ms, max {summary['max_ms']:.0f} ms, non-2xx "
                      f"{summary['non2xx']}, errors {summary['errors']}; CPU cores used: API "
                      f"{summary['cpu']['api']:.2f}, workers {summary['cpu']['workers']:.2f}; training "
                      f"{summary['training_epochs_per_s']:.2f} epochs/s; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            c.post(f"/v1/jobs/{training_id}/cancel")
            wait_for(c, training_id, ("cancelled", "succeeded", "failed"))

        # Submissions, then the drain of everything submitted.
        submit = [f"POST\t/v1/jobs\t{item['key']}\t{json.dumps(tiny_job(item['model'], item['dataset']))}"
                  for item in per_tenant]
        before = fit_job_ids()
        print(f"submissions: {args.submit_s:g} s of POST /v1/jobs", flush=True)
        with Profile(api.popen.pid, args.profile, "submissions"):
            posted = wrk(base_url, submit, workdir, seconds=args.submit_s, connections=min(args.connections, 16))
        print(f"  {posted['per_s']:,.0f} submissions/s, p50 {posted['p50_ms']:.1f} ms, p99 {posted['p99_ms']:.1f} "
              f"ms, non-2xx {posted['non2xx']}, errors {posted['errors']}", flush=True)
        job_ids = fit_job_ids() - before
        while len(job_ids) < args.drain_jobs:
            item = per_tenant[len(job_ids) % len(per_tenant)]
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {item['key']}"}) as own:
                own.post("/v1/jobs", json=tiny_job(item["model"], item["dataset"])).raise_for_status()
            job_ids = fit_job_ids() - before
        queued_at = time.monotonic()
        print(f"drain: {len(job_ids)} jobs through 2 workers", flush=True)
        deadline = queued_at + args.drain_timeout_s
        while time.monotonic() < deadline:
            counts = job_counts(job_ids)
            if sum(n for state, n in counts.items() if state.split("/")[0] in ("queued", "running")) == 0:
                break
            time.sleep(2)
        drain_s = time.monotonic() - queued_at
        counts = job_counts(job_ids)

    print("\n== results ==")
    for name, key in (("requests/s", "per_s"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")):
        print(f"reads {name}: {median_range([r[key] for r in read_runs], 1)}")
    rate, p99 = statistics.median(r["per_s"] for r in read_runs), statistics.median(r["p99_ms"] for r in read_runs)
    clean = all(r["non2xx"] == 0 and r["errors"] == 0 for r in read_runs)
    print(f"reads goal >= 1,000 req/s with p99 <= 50 ms, every answer a 2xx: "
          f"{'met' if rate >= 1000 and p99 <= 50 and clean else 'MISSED'}; "
          f"non-2xx {sum(r['non2xx'] for r in read_runs)}, errors {sum(r['errors'] for r in read_runs)}; "
          f"API CPU cores {median_range([r['cpu']['api'] for r in read_runs], 2)}, training worker "
          f"{median_range([r['cpu']['workers'] for r in read_runs], 2)}")
    print(f"training during the reads: {median_range([r['training_epochs_per_s'] for r in read_runs], 2)} epochs/s "
          f"against {idle_rate:.2f} alone")
    print(f"submissions: {posted['per_s']:,.0f}/s (p99 {posted['p99_ms']:.1f} ms, non-2xx {posted['non2xx']})  "
          f"goal >= 100/s: {'met' if posted['per_s'] >= 100 else 'MISSED'}")
    ok = counts.get("succeeded/attempt 1", 0)
    print(f"drain: {len(job_ids)} jobs in {drain_s:.0f} s ({len(job_ids) / drain_s:.1f} jobs/s), end states {counts}; "
          f"none lost: {'met' if ok == len(job_ids) else 'MISSED'}")


if __name__ == "__main__":
    main()
