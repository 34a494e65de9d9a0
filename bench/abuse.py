"""Another tenant's experience while one tenant attacks: its reads' p99 and its training's epochs a second.

A stack as production runs it (`kerasd api` with keys required, PostgreSQL, Redis, one worker at nice 10) on this
machine. Tenant B trains a long fit job and reads it (GET /v1/jobs/{id}, paced at `--read-every-ms`) throughout;
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
training >= 0.8x the no-attack rate under every attack. The load average is printed: the figures are only as
good as the machine was quiet.

    .venv/bin/python bench/abuse.py [--seconds 20] [--ramp-s 3] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import bz2  # noqa: F401 (zipfile's ZIP_BZIP2 needs it)
import collections
import io
import os
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import scratch_database, server_env
from bench._jobs import upload_arrays
from bench.api_load import epochs_done, make_tenants, use_database
from tests.services import Process, free_port, kerasd_command

TRAIN_MODEL = {"type": "sequential", "input_shape": [72], "layers": [
    {"class_name": "Dense", "units": 128, "activation": "relu"},
    {"class_name": "Dense", "units": 10, "activation": "softmax"}]}
DEEP_MODEL = {"type": "sequential", "input_shape": [1], "layers": [{"class_name": "Dense", "units": 1}] * 500}


def bogus_key() -> str:
    return f"kd_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)[:43]}"


def npz_bomb(expanded: int = 512 * 1024**2) -> bytes:
    """An .npz of one float32 array of `expanded` bytes of zeros, its member compressed with bz2."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (expanded // 4,)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_BZIP2) as archive, \
            archive.open("x.npy", "w", force_zip64=True) as member:
        member.write(header.getvalue())
        zeros = bytes(16 * 1024**2)
        for _ in range(expanded // len(zeros)):
            member.write(zeros)
    return buffer.getvalue()


def big_yaml() -> bytes:
    lines = [f"k{n}: [{n}, {n + 1}, {n + 2}, 'some text to read {n}']" for n in range(18_000)]
    return ("\n".join(lines) + "\n").encode()


class Attack:
    """`threads` threads each calling `one()` (which returns a label for what the attacker got) until stopped."""

    def __init__(self, threads: int, one: Callable[[threading.Event], str]) -> None:
        self.threads, self.one = threads, one
        self.stop = threading.Event()
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._threads: list[threading.Thread] = []

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                outcome = self.one(self.stop)
            except (httpx.HTTPError, OSError) as exc:
                outcome = type(exc).__name__
                self.stop.wait(0.2)
            self.outcomes[outcome] += 1

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)


def raw_status(data: bytes) -> str:
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line.split()[1] if line.startswith("HTTP/1.1 ") else "no answer"


def slow_upload(url: str, key: str) -> Callable[[threading.Event], str]:
    parts = httpx.URL(url)

    def one(stop: threading.Event) -> str:
        boundary = "kerasd-abuse"
        start = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.npy\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode()
        head = (f"POST /v1/datasets HTTP/1.1\r\nHost: {parts.host}:{parts.port}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000000\r\n\r\n")
        with socket.create_connection((parts.host, parts.port), timeout=1) as sock:
            sock.sendall(head.encode() + start)
            while not stop.is_set():
                try:
                    data = sock.recv(65536)
                    stop.wait(0.2)  # refused at once (429): a moment before the next slow upload
                    return raw_status(data) if data else "closed"
                except TimeoutError:
                    sock.sendall(b"x")
            return "stopped"

    return one


def stream_flood(client: httpx.Client, job_id: str) -> Callable[[threading.Event], str]:
    def one(stop: threading.Event) -> str:
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as response:
            if response.status_code != 200:
                response.read()
                stop.wait(1)
                return str(response.status_code)
            for _line in response.iter_lines():
                if stop.is_set():
                    break
            return "200"

    return one


def posting(client: httpx.Client, path: str, **kwargs) -> Callable[[threading.Event], str]:
    def one(_stop: threading.Event) -> str:
        return str(client.post(path, **kwargs).status_code)

    return one


def attacks(url: str, attacker: httpx.Client, key: str, queued_job: str) -> dict[str, Callable[[], Attack]]:
    big_json = b'{"kind": "fit", "name": "' + b"a" * 16_000_000 + b'"}'
    bomb = npz_bomb()
    csv = b"a,b\n" + b"".join(f"{n},{n % 7}\n".encode() for n in range(500))
    yaml_body = big_yaml()

    def bogus_json(_stop: threading.Event) -> str:
        with httpx.Client(base_url=url, timeout=60) as fresh:
            return str(fresh.post("/v1/jobs", content=big_json, headers={
                "Authorization": f"Bearer {bogus_key()}", "Content-Type": "application/json"}).status_code)

    def bad_key(_stop: threading.Event) -> str:
        return str(attacker.get("/v1/jobs", headers={"Authorization": f"Bearer {bogus_key()}"}).status_code)

    return {
        "bogus-key-json": lambda: Attack(4, bogus_json),
        "slow-uploads": lambda: Attack(8, slow_upload(url, key)),
        "npz-bomb": lambda: Attack(2, posting(attacker, "/v1/datasets", files={
            "file": ("bomb.npz", bomb, "application/octet-stream")})),
        "spec-flood": lambda: Attack(4, posting(attacker, "/v1/models", json=DEEP_MODEL)),
        "csv-amplification": lambda: Attack(2, posting(attacker, "/v1/datasets", data={
            "x_columns": ",".join(["a"] * 20_000)}, files={"file": ("tiny.csv", csv, "text/csv")})),
        "yaml-bodies": lambda: Attack(4, posting(attacker, "/v1/models", content=yaml_body,
                                                 headers={"Content-Type": "application/yaml"})),
        "stream-flood": lambda: Attack(150, stream_flood(attacker, queued_job)),
        "bad-key-flood": lambda: Attack(4, bad_key),
    }


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


def phase(name: str, attack: Attack | None, reader: Reader, training_id: str, seconds: float,
          ramp_s: float) -> dict:
    if attack is not None:
        attack.start()
    time.sleep(ramp_s)
    reader.window()
    reader.recording = True
    before, started = epochs_done(training_id), time.monotonic()
    time.sleep(seconds)
    epochs = (epochs_done(training_id) - before) / (time.monotonic() - started)
    reader.recording = False
    latencies, failures = reader.window()
    if attack is not None:
        attack.finish()
    row = {"name": name, "reads": len(latencies), "p50_ms": statistics.median(latencies) * 1000,
           "p99_ms": p99(latencies) * 1000, "failures": dict(failures), "epochs_per_s": epochs,
           "attacker": dict(attack.outcomes) if attack else {}, "load": os.getloadavg()[0]}
    print(f"  {name}: p99 {row['p99_ms']:.1f} ms, {epochs:.2f} epochs/s, attacker got {row['attacker']}, "
          f"load {row['load']:.2f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ramp-s", type=float, default=3)
    parser.add_argument("--read-every-ms", type=float, default=50)
    parser.add_argument("--only", default="", help="comma-separated attack names (default: all)")
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory(prefix="kerasd-abuse-") as tmp, scratch_database() as database_url, \
            ExitStack() as stack:
        workdir = Path(tmp)
        env = server_env(database_url, workdir / "data", KERASD_AUTH="required", KERASD_WORKER_NICE="10",
                         KERASD_SSE_HEARTBEAT_S="1", KERASD_CHECKPOINT_EVERY_EPOCHS="0")
        use_database(env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = Process(kerasd_command("api", "--host", "127.0.0.1", "--port", str(port)), env, workdir / "api.log")
        stack.callback(api.stop)
        worker = Process(kerasd_command("worker", "--name", f"abuse-{uuid.uuid4().hex[:6]}@%h"), env,
                         workdir / "worker.log")
        stack.callback(worker.stop)
        api.wait_for_http(f"{url}/health", timeout_s=180)
        worker.wait_for_log(" ready.", timeout_s=240)
        (_a, key_a), (_b, key_b) = make_tenants(2)
        attacker = stack.enter_context(httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_a}"},
                                                    timeout=120, limits=httpx.Limits(max_connections=200)))
        other = stack.enter_context(httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_b}"},
                                                 timeout=120))
        rng = np.random.default_rng(0)
        x = rng.random((5_000, 72), dtype="float32")
        y = np.eye(10, dtype="float32")[rng.integers(0, 10, 5_000)]
        dataset_b = upload_arrays(other, "train.npz", x=x, y=y)
        model_b = other.post("/v1/models", json=TRAIN_MODEL)
        model_b.raise_for_status()
        fit = {"model_id": model_b.json()["id"], "compile": {"optimizer": "adam", "loss": "categorical_crossentropy"},
               "fit": {"x": {"dataset_id": dataset_b, "array": "x"}, "y": {"dataset_id": dataset_b, "array": "y"},
                       "epochs": 100_000, "batch_size": 128}}
        training = other.post("/v1/jobs", json=fit)
        training.raise_for_status()
        training_id = training.json()["id"]
        # A's own job, queued behind B's on the one worker: the stream flood's target.
        dataset_a = upload_arrays(attacker, "a.npz", x=x[:100], y=y[:100])
        model_a = attacker.post("/v1/models", json=TRAIN_MODEL).json()["id"]
        queued = attacker.post("/v1/jobs", json={**fit, "model_id": model_a, "fit": {
            **fit["fit"], "x": {"dataset_id": dataset_a, "array": "x"}, "y": {"dataset_id": dataset_a, "array": "y"}}})
        queued.raise_for_status()
        while epochs_done(training_id) < 2:
            time.sleep(0.5)
        print("building the attacks' bodies", flush=True)
        made = attacks(url, attacker, key_a, queued.json()["id"])
        chosen = [name for name in made if not args.only or name in args.only.split(",")]
        reader = Reader(other, training_id, args.read_every_ms / 1000)
        reader.thread.start()
        rows = [phase("no attack", None, reader, training_id, args.seconds, args.ramp_s)]
        for name in chosen:
            rows.append(phase(name, made[name](), reader, training_id, args.seconds, args.ramp_s))
        rows.append(phase("no attack (again)", None, reader, training_id, args.seconds, args.ramp_s))
        reader.stop.set()
        other.post(f"/v1/jobs/{training_id}/cancel")
        attacker.post(f"/v1/jobs/{queued.json()['id']}/cancel")
        report(rows)


def report(rows: list[dict]) -> None:
    calm = [row["epochs_per_s"] for row in rows if row["name"].startswith("no attack")]
    baseline = statistics.mean(calm)
    print(f"\nB's training with no attack: {baseline:.2f} epochs/s (mean of the runs before and after)")
    print("| attack | B's reads | p50 ms | p99 ms | B's non-200 | B's epochs/s | x no attack | load avg | "
          "A got | targets met |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["epochs_per_s"] / baseline if baseline else float("nan")
        met = row["p99_ms"] <= 100 and ratio >= 0.8 and not row["failures"]
        attacker = ", ".join(f"{k}: {v}" for k, v in sorted(row["attacker"].items())) or "-"
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(row["failures"].items())) or "0"
        print(f"| {row['name']} | {row['reads']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {failures} | "
              f"{row['epochs_per_s']:.2f} | {ratio:.2f} | {row['load']:.2f} | {attacker} | "
              f"{'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
