"""Starting the real processes the tests talk to: PostgreSQL database, Celery worker, API, `kerasd up`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PG_ADMIN_URL = os.environ.get("KERASD_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("KERASD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_database(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    """A child process whose output goes to a log file the test can read when something goes wrong."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_log(self, needle: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            if not self.alive():
                break
            time.sleep(0.2)
        raise RuntimeError(f"{self.popen.args} did not log {needle!r}:\n{self.log_text()[-5000:]}")

    def wait_for_http(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                break
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.popen.args} did not answer {url}:\n{self.log_text()[-5000:]}")

    def stop(self) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def kerasd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kerasd", *args]


@contextmanager
def running_api(env: dict[str, str], log_path: Path, *args: str) -> Iterator[tuple[str, Process]]:
    """(URL, process) of a `kerasd api` process on a free port, answering /health; stopped afterwards."""
    port = free_port()
    process = Process(kerasd_command("api", "--port", str(port), *args), env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for_http(f"{url}/health", timeout_s=120)
        yield url, process
    finally:
        process.stop()


@contextmanager
def running_worker(env: dict[str, str], log_path: Path, *args: str) -> Iterator[Process]:
    """A `kerasd worker` process that has logged that it is ready; stopped afterwards."""
    process = Process(kerasd_command("worker", *args), env, log_path)
    try:
        process.wait_for_log(" ready.", timeout_s=180)
        yield process
    finally:
        process.stop()


@dataclass
class EmbeddedStack:
    """A running `scripts/up` (the README's run command): its API's URL, its Redis port, its data directory."""

    url: str
    redis_port: int
    data_dir: Path
    process: Process


@contextmanager
def embedded_stack(tmp_path: Path, settings: dict[str, str] | None = None) -> Iterator[EmbeddedStack]:
    """`scripts/up` on free ports with nothing of the test session's servers (it must bring its own), from this
    virtualenv, with `settings` (KERASD_ variables) only; stopped with SIGTERM, as Ctrl-C stops it."""
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASD_")}
    env.update(settings or {})
    env["KERASD_VENV"] = sys.prefix
    data_dir = tmp_path / "data"
    root = Path(__file__).resolve().parent.parent
    up = Process(
        [
            str(root / "scripts" / "up"),
            "--port",
            str(port),
            "--redis-port",
            str(redis_port),
            "--data-dir",
            str(data_dir),
        ],
        env,
        tmp_path / "up.log",
    )
    try:
        up.wait_for_log("kerasd is up", timeout_s=300)
        yield EmbeddedStack(f"http://127.0.0.1:{port}", redis_port, data_dir, up)
    finally:
        up.popen.send_signal(signal.SIGTERM)
        up.popen.wait(timeout=60)
