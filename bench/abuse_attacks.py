"""The attacks of bench/abuse.py, each run by a process of its own that leaves the CPU to the service and reports
its own CPU.

The attacking client stands for another host: it takes the cores only when the API, the worker and the database
leave them (`leave_the_cpu`), and the CPU it spent is measured apart (getrusage of its own threads), so that
bench/abuse.py's figures say what the service lets an attacker do rather than what the attacker's own client
costs the shared machine.

    python -m bench.abuse_attacks NAME URL KEY QUEUED_JOB_ID [idle|normal]
    stdin: `start`, then `stop`; stdout: `ready` (its bodies built), then one JSON line with the attacker's
    outcomes, its CPU seconds and the wall seconds between `start` and `stop`.

    python -m bench.abuse_attacks --isolation [SECONDS]
    how much CPU a busy attacker takes from busy niced workers, started as the bench used to and as it does now.
"""

from __future__ import annotations

import bz2  # noqa: F401 (zipfile's ZIP_BZIP2 needs it)
import collections
import io
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable

import httpx
import numpy as np

DEEP_MODEL = {"type": "sequential", "input_shape": [1], "layers": [{"class_name": "Dense", "units": 1}] * 500}


def bogus_key() -> str:
    return f"kd_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)[:43]}"


def npz_bomb(expanded: int = 512 * 1024**2) -> bytes:
    """An .npz of one float32 array of `expanded` bytes of zeros, its member compressed with bz2."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (expanded // 4,)})
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_BZIP2) as archive,
        archive.open("x.npy", "w", force_zip64=True) as member,
    ):
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
        start = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.npy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        head = (
            f"POST /v1/datasets HTTP/1.1\r\nHost: {parts.host}:{parts.port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000000\r\n\r\n"
        )
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


ATTACKS = (
    "bogus-key-json",
    "slow-uploads",
    "npz-bomb",
    "spec-flood",
    "csv-amplification",
    "yaml-bodies",
    "stream-flood",
    "bad-key-flood",
)


def attack(name: str, url: str, attacker: httpx.Client, key: str, queued_job: str) -> Attack:
    """The attack called `name`, its bodies built."""
    if name == "bogus-key-json":
        big_json = b'{"kind": "fit", "name": "' + b"a" * 16_000_000 + b'"}'

        def bogus_json(_stop: threading.Event) -> str:
            with httpx.Client(base_url=url, timeout=60) as fresh:
                return str(
                    fresh.post(
                        "/v1/jobs",
                        content=big_json,
                        headers={"Authorization": f"Bearer {bogus_key()}", "Content-Type": "application/json"},
                    ).status_code
                )

        return Attack(4, bogus_json)
    if name == "slow-uploads":
        return Attack(8, slow_upload(url, key))
    if name == "npz-bomb":
        return Attack(
            2, posting(attacker, "/v1/datasets", files={"file": ("bomb.npz", npz_bomb(), "application/octet-stream")})
        )
    if name == "spec-flood":
        return Attack(4, posting(attacker, "/v1/models", json=DEEP_MODEL))
    if name == "csv-amplification":
        csv = b"a,b\n" + b"".join(f"{n},{n % 7}\n".encode() for n in range(500))
        return Attack(
            2,
            posting(
                attacker,
                "/v1/datasets",
                data={"x_columns": ",".join(["a"] * 20_000)},
                files={"file": ("tiny.csv", csv, "text/csv")},
            ),
        )
    if name == "yaml-bodies":
        return Attack(
            4, posting(attacker, "/v1/models", content=big_yaml(), headers={"Content-Type": "application/yaml"})
        )
    if name == "stream-flood":
        return Attack(150, stream_flood(attacker, queued_job))
    if name == "bad-key-flood":
        return Attack(
            4,
            lambda _stop: str(attacker.get("/v1/jobs", headers={"Authorization": f"Bearer {bogus_key()}"}).status_code),
        )
    raise SystemExit(f"no attack named {name!r}; the attacks: {', '.join(ATTACKS)}")


def leave_the_cpu() -> None:
    """Run this process (and every thread it starts later) only on CPU the service leaves.

    nice 19 alone did not: where Linux schedules by autogroup (/proc/sys/kernel/sched_autogroup_enabled, as here),
    a niceness ranks threads only within their session's group, and the groups share the CPUs by the groups' own
    niceness. The worker renices its own group to KERASD_WORKER_NICE (app/commands/worker.py), so an attacker at
    nice 19 in the bench's group (nice 0) outweighed it 1024 to 110: the run of 2026-12-06 04:51 measured the
    attacker's client at 1.51 cores and B's worker at 0.25 under bogus-key JSON. So the process runs in a session
    of its own (bench/abuse.py starts it so), renices that session's group to 19, and asks for SCHED_IDLE, under
    which a thread runs only when nothing else of its group wants the CPU. `--isolation` measures it."""
    os.nice(19)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # not Linux: nice 19 is what there is
    if os.getsid(0) == os.getpid():  # the group is this process's alone: renicing it touches nothing else
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write("19")
        except OSError:
            pass  # no autogroups: nice and SCHED_IDLE already rank it below every other process


SPINNER = """
import os, sys, time
role, seconds = sys.argv[1], float(sys.argv[2])
if role == "worker":  # as `kerasd worker` with KERASD_WORKER_NICE=10 in a session of its own
    os.nice(10)
    try:
        open("/proc/self/autogroup", "w").write("10")
    except OSError:
        pass
elif role == "before":  # the bench's attacker until 2026-12-06: nice 19 in the bench's session
    os.nice(19)
else:
    from bench.abuse_attacks import leave_the_cpu
    leave_the_cpu()
end = time.monotonic() + seconds
while time.monotonic() < end:
    pass
print(time.process_time())
"""


def isolation(seconds: float) -> None:
    """One busy loop per CPU as the worker runs (nice 10, its own group niced 10) and one busy attacker, started
    as the bench did before and as it does now: the cores each took."""
    for role in ("before", "now"):
        spinners = [
            subprocess.Popen(
                [sys.executable, "-c", SPINNER, "worker", str(seconds)], stdout=subprocess.PIPE, start_new_session=True
            )
            for _ in range(os.cpu_count() or 1)
        ]
        attacker = subprocess.Popen(
            [sys.executable, "-c", SPINNER, role, str(seconds)],
            stdout=subprocess.PIPE,
            start_new_session=role == "now",
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        workers = sum(float(spinner.communicate()[0]) for spinner in spinners) / seconds
        taken = float(attacker.communicate()[0]) / seconds
        print(f"attacker started {role}: attacker {taken:.2f} cores, {len(spinners)} niced workers {workers:.2f} cores")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if sys.argv[1] == "--isolation":
        isolation(float(sys.argv[2]) if len(sys.argv) > 2 else 5.0)
        return
    name, url, key, queued_job = sys.argv[1:5]
    if (sys.argv[5] if len(sys.argv) > 5 else "idle") == "idle":
        leave_the_cpu()  # before any thread: every thread it starts inherits it
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=httpx.Limits(max_connections=200)
    ) as attacker:
        chosen = attack(name, url, attacker, key, queued_job)
        print("ready", flush=True)
        assert sys.stdin.readline().strip() == "start"
        cpu_before, started = cpu_s(), time.monotonic()
        chosen.start()
        assert sys.stdin.readline().strip() == "stop"
        chosen.finish()
        cpu, wall = cpu_s() - cpu_before, time.monotonic() - started
    print(json.dumps({"outcomes": dict(chosen.outcomes), "cpu_s": cpu, "wall_s": wall}), flush=True)


if __name__ == "__main__":
    main()
