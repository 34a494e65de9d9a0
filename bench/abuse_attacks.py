"""The attacks of bench/abuse.py, each run by a process of its own at nice 19, which reports its own CPU.

The attacking client is not the service: at nice 19 it takes the cores only when the API and the worker leave
them, and the CPU it spent is measured apart (getrusage of its own threads), so that bench/abuse.py's figures say
what the service lets an attacker do rather than what the attacker's own client costs the shared machine.

    python -m bench.abuse_attacks NAME URL KEY QUEUED_JOB_ID
    stdin: `start`, then `stop`; stdout: `ready` (its bodies built), then one JSON line with the attacker's
    outcomes, its CPU seconds and the wall seconds between `start` and `stop`.
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


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    name, url, key, queued_job = sys.argv[1:5]
    os.nice(19)  # before any thread: every thread it starts inherits it
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
