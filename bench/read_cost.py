"""The API's CPU per read, tree against tree: each tree's API served at once, wrk's reads sent to one after the other.

`bench/api_load.py` measures one tree at a time, with a worker training; comparing two trees that way on a shared
machine takes minutes a run, and the load changes between them. Here each tree serves its own API and scratch
database at the same time (`serve`, run with that tree's Python from that tree's root: its own code and harness),
and `compare` sends the same reads as `bench/api_load.py` (a tenant's finished job and `?status=running`,
alternating, from every tenant in turn) to each tree for `--seconds`, the order turned every round, and reports the
API process tree's CPU time per answered read and each round's ratio to the first tree.

    cd /work/base && .venv/bin/python /path/to/bench/read_cost.py serve /tmp/base.json /tmp/stop &
    cd /work/main && .venv/bin/python /path/to/bench/read_cost.py serve /tmp/main.json /tmp/stop &
    .venv/bin/python bench/read_cost.py compare --rounds 6 base=/tmp/base.json main=/tmp/main.json; touch /tmp/stop
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path


def serve(out: Path, stop: Path, tenants: int) -> None:
    """This tree's API (2 processes, keys required) with `tenants` tenants, each with a finished 3-epoch job; writes
    {url, pid, lines} to `out` and serves until `stop` exists. Every tenant's request rate is raised, so that no
    read is refused for it."""
    sys.path.insert(0, os.getcwd())
    import httpx
    import numpy as np

    from bench._harness import scratch_database, server_env
    from bench._jobs import upload_arrays
    from bench.api_load import TINY_MODEL, make_tenants, tiny_job, use_database, wait_for
    from tests.services import Process, free_port, kerasd_command

    with tempfile.TemporaryDirectory(prefix="kerasd-read-cost-") as tmp, scratch_database() as database, \
            ExitStack() as stack:
        workdir = Path(tmp)
        env = server_env(database, workdir / "data", KERASD_AUTH="required",
                         KERASD_REQUESTS_PER_S_PER_TENANT="1000", KERASD_REQUEST_BURST_PER_TENANT="10000")
        use_database(env)
        port = str(free_port())
        url = f"http://127.0.0.1:{port}"
        # The API as production runs it (2 processes, access log at info), and a worker for the set-up jobs.
        commands = {"api": ("api", "--host", "127.0.0.1", "--port", port, "--workers", "2"),
                    "worker": ("worker", "--name", f"cost-{uuid.uuid4().hex[:6]}@%h")}
        started = {}
        for name, command in commands.items():
            started[name] = Process(kerasd_command(*command), env, workdir / f"{name}.log")
            stack.callback(started[name].stop)
        api, worker = started["api"], started["worker"]
        api.wait_for_http(f"{url}/health", timeout_s=300)
        worker.wait_for_log(" ready.", timeout_s=300)
        rng = np.random.default_rng(0)
        x, y = rng.random((64, 8), dtype="float32"), np.eye(4, dtype="float32")[rng.integers(0, 4, 64)]
        jobs = []
        for _tenant, key in make_tenants(tenants):
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=900) as client:
                model = client.post("/v1/models", json=TINY_MODEL)
                model.raise_for_status()
                request = tiny_job(model.json()["id"], upload_arrays(client, "tiny.npz", x=x, y=y))
                request["fit"]["epochs"] = 3
                job = client.post("/v1/jobs", json=request)
                job.raise_for_status()
                jobs.append((key, job.json()["id"]))
        for key, job_id in jobs:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=900) as client:
                assert wait_for(client, job_id, ("succeeded", "failed"))["status"] == "succeeded"
        worker.stop()  # nothing trains meanwhile: the API's own CPU is what is compared
        lines = [line for key, job_id in jobs
                 for line in (f"GET\t/v1/jobs/{job_id}\t{key}", f"GET\t/v1/jobs?status=running\t{key}")]
        out.write_text(json.dumps({"url": url, "pid": api.popen.pid, "lines": lines}))
        print(f"serving at {url}", flush=True)
        while not stop.exists():
            time.sleep(1)


def compare(arms: dict[str, dict], rounds: int, seconds: float, connections: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench._jobs import tree_cpu_seconds
    from bench.api_load import wrk

    names = list(arms)
    cost: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms.values():  # warm-up, not counted
            wrk(arm["url"], arm["lines"], Path(tmp), seconds=2, connections=connections)
        for run in range(rounds):
            for name in names if run % 2 == 0 else names[::-1]:
                arm = arms[name]
                before = tree_cpu_seconds(arm["pid"])
                summary = wrk(arm["url"], arm["lines"], Path(tmp), seconds=seconds, connections=connections)
                cost[name].append((tree_cpu_seconds(arm["pid"]) - before) * 1000 / summary["requests"])
                print(f"round {run + 1} {name}: {cost[name][-1]:.3f} ms CPU a read, {summary['per_s']:.0f} reads/s, "
                      f"p99 {summary['p99_ms']:.0f} ms, non-2xx {summary['non2xx']}, load {os.getloadavg()[0]:.1f}",
                      flush=True)
    first = names[0]
    for name in names:
        ratios = [mine / theirs for mine, theirs in zip(cost[name], cost[first], strict=True)]
        print(f"{name}: median {statistics.median(cost[name]):.3f} ms CPU a read (range {min(cost[name]):.3f}-"
              f"{max(cost[name]):.3f}); each round's ratio to {first}: median {statistics.median(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    served = commands.add_parser("serve")
    served.add_argument("out", type=Path)
    served.add_argument("stop", type=Path)
    served.add_argument("--tenants", type=int, default=10)
    compared = commands.add_parser("compare")
    compared.add_argument("arms", nargs="+", help="NAME=FILE written by serve; the first is the reference")
    compared.add_argument("--rounds", type=int, default=6)
    compared.add_argument("--seconds", type=float, default=8)
    compared.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.out, args.stop, args.tenants)
    else:
        arms = {name: json.loads(Path(file).read_text()) for name, file in (arm.split("=", 1) for arm in args.arms)}
        compare(arms, args.rounds, args.seconds, args.connections)


if __name__ == "__main__":
    main()
