"""Shared pieces of the benchmarks: a scratch PostgreSQL database, kerasd processes, memory sampling."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import (  # noqa: E402  (the benchmarks reuse the test harness's process control)
    REDIS_URL,
    create_database,
    drop_database,
    running_api,
    running_worker,
)
from tests.services import Process as Process  # noqa: E402  (bench/backends.py takes these from here)
from tests.services import kerasd_command as kerasd_command  # noqa: E402


@contextmanager
def scratch_database():
    """A fresh PostgreSQL database at the newest schema, dropped afterwards."""
    from app.core.migrate import upgrade_to_head

    name = f"kerasd_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        drop_database(name)


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KERASD_DATABASE_URL": database_url,
        "KERASD_REDIS_URL": REDIS_URL,
        "KERASD_QUEUE": f"kerasd-bench-{uuid.uuid4().hex[:8]}",
        "KERASD_DATA_DIR": str(data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


@contextmanager
def api_process(env: dict[str, str], log_dir: Path):
    with running_api(env, log_dir / "api.log", "--log-level", "warning") as (url, process):
        yield process, url


@contextmanager
def worker_process(env: dict[str, str], log_dir: Path):
    with running_worker(env, log_dir / "worker.log", "--name", f"bench-{uuid.uuid4().hex[:6]}@%h") as process:
        yield process


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory from /proc: VmRSS (all), or RssAnon (the process's own, without file pages such as a
    memory-mapped dataset, which belong to the page cache and are shared)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Samples a process's resident memory in a thread; `growth` is the peak above the first sample."""

    def __init__(self, pid: int, every_s: float = 0.02, field: str = "VmRSS") -> None:
        self.pid, self.every_s, self.field = pid, every_s, field
        self.start = rss_bytes(pid, field)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, rss_bytes(self.pid, self.field))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (range {min(values):.3f}-{max(values):.3f}, n={len(values)})"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result
