"""Another tenant's experience while one tenant attacks: its reads' p99 and its training's epochs a second.

A stack as production runs it (`kerasd api` with keys required, PostgreSQL, Redis, one worker at nice 10) on this
machine. Tenant B trains a long fit job (`--rows` rows an epoch) and reads it (GET /v1/jobs/{id}, paced at
`--read-every-ms`) throughout;
tenant A, from the same address, runs each attack in turn for `--seconds` (after `--ramp-s` to get going):

- bogus-key-json: 4 clients sending 16 MB JSON bodies with keys no tenant has;
- slow-uploads: 8 uploads sending a byte a second (cut at KERASD_MIN_BODY_BYTES_PER_S, capped per tenant);
- npz-bomb: a small .npz whose bz2 member expands to 512 MiB, uploaded over and over by 2 clients;
- spec-flood: 4 clients creating 500-layer Dense(1) models;
- csv-amplification: a 4 KB CSV whose x_columns names one column 20,000 times, by 2 clients;
- yaml-bodies: 4 clients posting ~1 MB YAML bodies;
- stream-flood: 150 live event streams of A's queued job;
- bad-key-flood: 4 clients sending GET /v1/jobs with a new bogus key each time.

With no attack before the first and after the last, in the same run. Targets: B's reads p99 <= 100 ms and its
training >= 0.8x the no-attack rate under every attack. Each attack runs in a process of its own that stands
for another host (bench/abuse_attacks.py): in a session of its own, its autogroup reniced to 19 and SCHED_IDLE, so
that on a machine whose cores the service shares with the attacking client, the client takes only what the
service leaves. Its own CPU is reported apart from the API's, the worker's and the database's (PostgreSQL and
Redis; in cores: CPU seconds a second). The load average is printed: the figures are only as good as the machine
was quiet.

    .venv/bin/python bench/abuse.py [--seconds 20] [--ramp-s 3] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import ROOT, scratch_database, server_env
from bench._jobs import upload_arrays
from bench.abuse_attacks import ATTACKS
from bench.api_load import epochs_done, make_tenants, use_database
from tests.services import Process, free_port, kerasd_command

TRAIN_MODEL = {
    "type": "sequential",
    "input_shape": [72],
    "layers": [
        {"class_name": "Dense", "units": 128, "activation": "relu"},
        {"class_name": "Dense", "units": 10, "activation": "softmax"},
    ],
}
TICKS = os.sysconf("SC_CLK_TCK")


class AttackProcess:
    """One attack in a process of its own at nice 19 (bench/abuse_attacks.py), its bodies built once it is made."""

    def __init__(self, name: str, url: str, key: str, queued_job: str, priority: str = "idle") -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.abuse_attacks", name, url, key, queued_job, priority],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            # A session (so an autogroup) of its own, which it renices: see abuse_attacks.leave_the_cpu.
            start_new_session=True,
        )
        ready = self.popen.stdout.readline()
        if ready.strip() != "ready":
            self.popen.kill()
            raise RuntimeError(f"the attack {name} did not start: {ready!r}")
        self.result: dict = {}

    def _say(self, word: str) -> None:
        self.popen.stdin.write(word + "\n")
        self.popen.stdin.flush()

    def start(self) -> None:
        self._say("start")

    def finish(self) -> None:
        self._say("stop")
        self.result = json.loads(self.popen.stdout.readline())
        self.popen.wait(60)

    def close(self) -> None:
        """Stops it if it still runs (a phase that failed): no attacker outlives the bench."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def _processes() -> dict[int, tuple[str, int, int]]:
    """Every process: (command name, parent pid, CPU ticks of its own and of its waited-for children)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    name, rest = stat.read().split(" (", 1)[1].rsplit(")", 1)
            except (OSError, ValueError):
                continue
            # After the command's closing parenthesis: state, ppid, ... utime stime cutime cstime at 11-14.
            fields = rest.split()
            stats[int(entry)] = (name, int(fields[1]), sum(int(value) for value in fields[11:15]))
    return stats


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds of processes and their descendants, alive or reaped (each one's own and its waited-for
    children's)."""
    stats = _processes()
    children = collections.defaultdict(list)
    for child, (_name, parent, _ticks) in stats.items():
        children[parent].append(child)
    total, todo = 0, list(pids)
    while todo:
        current = todo.pop()
        total += stats.get(current, ("", 0, 0))[2]
        todo.extend(children[current])
    return total / TICKS


def database_pids() -> list[int]:
    """PostgreSQL's postmaster and Redis on this machine (the bench's are the machine's: a scratch database on the
    local server). Their backends run in sessions of their own at nice 0, so what a refusal costs them comes from
    the worker as much as what it costs the API."""
    stats = _processes()
    return [
        pid
        for pid, (name, parent, _ticks) in stats.items()
        if name == "redis-server" or (name == "postgres" and stats.get(parent, ("",))[0] != "postgres")
    ]


class Reader:
    """Tenant B reading its job at a steady pace; latencies of the requests sent while `recording`."""

    def __init__(self, client: httpx.Client, job_id: str, every_s: float) -> None:
        self.client, self.job_id, self.every_s = client, job_id, every_s
        self.recording = False
        self.latencies: list[float] = []
        self.failures: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                status = self.client.get(f"/v1/jobs/{self.job_id}").status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            took = time.perf_counter() - started
            if self.recording:
                self.latencies.append(took)
                if status != 200:
                    self.failures[str(status)] += 1
            self.stop.wait(max(0.0, self.every_s - took))

    def window(self) -> tuple[list[float], collections.Counter[str]]:
        taken, self.latencies = self.latencies, []
        failures, self.failures = self.failures, collections.Counter()
        return taken, failures


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def phase(
    name: str,
    attack: AttackProcess | None,
    reader: Reader,
    training_id: str,
    seconds: float,
    ramp_s: float,
    service: dict[str, list[int]],
) -> dict:
    print(f"  {name}: started at {time.strftime('%H:%M:%S')}", flush=True)
    if attack is not None:
        attack.start()
    time.sleep(ramp_s)
    reader.window()
    reader.recording = True
    cpu_before = {part: tree_cpu_s(pids) for part, pids in service.items()}
    before, started = epochs_done(training_id), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    epochs = (epochs_done(training_id) - before) / elapsed
    cores = {part: (tree_cpu_s(pids) - cpu_before[part]) / elapsed for part, pids in service.items()}
    reader.recording = False
    latencies, failures = reader.window()
    if attack is not None:
        attack.finish()
        cores["attacker"] = attack.result["cpu_s"] / attack.result["wall_s"]
    row = {
        "name": name,
        "reads": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": p99(latencies) * 1000,
        "failures": dict(failures),
        "epochs_per_s": epochs,
        "cores": cores,
        "attacker": attack.result["outcomes"] if attack else {},
        "load": os.getloadavg()[0],
    }
    print(
        f"  {name}: p99 {row['p99_ms']:.1f} ms, {epochs:.2f} epochs/s, cores "
        f"{', '.join(f'{part} {used:.2f}' for part, used in cores.items())}, attacker got {row['attacker']}, "
        f"load {row['load']:.2f}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ramp-s", type=float, default=3)
    parser.add_argument("--read-every-ms", type=float, default=50)
    # B's rows an epoch. B's reads return the job with every epoch it has logged, so each read costs more as the
    # run goes on: with 5,000 rows (14 epochs/s, ~5,000 epochs by the end) the API's CPU in the two no-attack rows
    # went from 0.09 to 0.32 cores and B's training from 16.1 to 11.6 epochs/s (2026-12-06 04:51). 40,000 rows
    # make an epoch 8 times longer, and the last read ~700 epochs long.
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--only", default="", help="comma-separated attack names (default: all)")
    parser.add_argument(
        "--attacker-priority",
        choices=("idle", "normal"),
        default="idle",
        help="idle: the attacker takes only CPU the service leaves (another host's client); normal: it competes "
        "like any process, to profile the API under an attack at full rate on a busy machine",
    )
    args = parser.parse_args()
    print(
        f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="kerasd-abuse-") as tmp,
        scratch_database() as database_url,
        ExitStack() as stack,
    ):
        workdir = Path(tmp)
        env = server_env(
            database_url,
            workdir / "data",
            KERASD_AUTH="required",
            KERASD_WORKER_NICE="10",
            KERASD_SSE_HEARTBEAT_S="1",
            KERASD_CHECKPOINT_EVERY_EPOCHS="0",
        )
        use_database(env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = Process(kerasd_command("api", "--host", "127.0.0.1", "--port", str(port)), env, workdir / "api.log")
        stack.callback(api.stop)
        worker = Process(
            kerasd_command("worker", "--name", f"abuse-{uuid.uuid4().hex[:6]}@%h"), env, workdir / "worker.log"
        )
        stack.callback(worker.stop)
        api.wait_for_http(f"{url}/health", timeout_s=180)
        worker.wait_for_log(" ready.", timeout_s=240)
        print(f"API pid {api.popen.pid}, worker pid {worker.popen.pid} (for py-spy)", flush=True)
        (_a, key_a), (_b, key_b) = make_tenants(2)
        attacker = stack.enter_context(
            httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {key_a}"},
                timeout=120,
                limits=httpx.Limits(max_connections=200),
            )
        )
        other = stack.enter_context(
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_b}"}, timeout=120)
        )
        rng = np.random.default_rng(0)
        x = rng.random((args.rows, 72), dtype="float32")
        y = np.eye(10, dtype="float32")[rng.integers(0, 10, args.rows)]
        dataset_b = upload_arrays(other, "train.npz", x=x, y=y)
        model_b = other.post("/v1/models", json=TRAIN_MODEL)
        model_b.raise_for_status()
        fit = {
            "model_id": model_b.json()["id"],
            "compile": {"optimizer": "adam", "loss": "categorical_crossentropy"},
            "fit": {
                "x": {"dataset_id": dataset_b, "array": "x"},
                "y": {"dataset_id": dataset_b, "array": "y"},
                "epochs": 100_000,
                "batch_size": 128,
            },
        }
        training = other.post("/v1/jobs", json=fit)
        training.raise_for_status()
        training_id = training.json()["id"]
        # A's own job, queued behind B's on the one worker: the stream flood's target.
        dataset_a = upload_arrays(attacker, "a.npz", x=x[:100], y=y[:100])
        model_a = attacker.post("/v1/models", json=TRAIN_MODEL).json()["id"]
        queued = attacker.post(
            "/v1/jobs",
            json={
                **fit,
                "model_id": model_a,
                "fit": {
                    **fit["fit"],
                    "x": {"dataset_id": dataset_a, "array": "x"},
                    "y": {"dataset_id": dataset_a, "array": "y"},
                },
            },
        )
        queued.raise_for_status()
        while epochs_done(training_id) < 2:
            time.sleep(0.5)
        chosen = [name for name in ATTACKS if not args.only or name in args.only.split(",")]
        reader = Reader(other, training_id, args.read_every_ms / 1000)
        reader.thread.start()
        service = {"API": [api.popen.pid], "worker": [worker.popen.pid], "database": database_pids()}
        rows = [phase("no attack", None, reader, training_id, args.seconds, args.ramp_s, service)]
        for name in chosen:
            # Its bodies built before the phase (the npz bomb takes the attacker seconds of bz2).
            attack = AttackProcess(name, url, key_a, queued.json()["id"], args.attacker_priority)
            try:
                rows.append(phase(name, attack, reader, training_id, args.seconds, args.ramp_s, service))
            finally:
                attack.close()
        rows.append(phase("no attack (again)", None, reader, training_id, args.seconds, args.ramp_s, service))
        reader.stop.set()
        other.post(f"/v1/jobs/{training_id}/cancel")
        attacker.post(f"/v1/jobs/{queued.json()['id']}/cancel")
        report(rows)


def report(rows: list[dict]) -> None:
    calm = [row["epochs_per_s"] for row in rows if row["name"].startswith("no attack")]
    baseline = statistics.mean(calm)
    print(f"\nB's training with no attack: {baseline:.2f} epochs/s (mean of the runs before and after)")
    print(
        "| attack | B's reads | p50 ms | p99 ms | B's non-200 | B's epochs/s | x no attack | API cores | "
        "worker cores | database cores | A's client cores | load avg | A got | targets met |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["epochs_per_s"] / baseline if baseline else float("nan")
        reads, training = row["p99_ms"] <= 100 and not row["failures"], ratio >= 0.8
        met = "yes" if reads and training else "reads" if reads else "training" if training else "no"
        attacker = ", ".join(f"{k}: {v}" for k, v in sorted(row["attacker"].items())) or "-"
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(row["failures"].items())) or "0"
        cores = row["cores"]
        client = f"{cores['attacker']:.2f}" if "attacker" in cores else "-"
        print(
            f"| {row['name']} | {row['reads']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {failures} | "
            f"{row['epochs_per_s']:.2f} | {ratio:.2f} | {cores['API']:.2f} | {cores['worker']:.2f} | "
            f"{cores['database']:.2f} | {client} | "
            f"{row['load']:.2f} | {attacker} | {met} |"
        )


if __name__ == "__main__":
    main()
