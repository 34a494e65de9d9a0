"""A PostgreSQL cluster and a Redis server of a test's own, which the test may stop and start at will."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.services import free_port


def _as_postgres(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True)


class PrivatePostgres:
    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins or shutil.which("runuser") is None:
            raise RuntimeError("PostgreSQL server binaries are not installed here")
        self.bin = Path(bins[-1])
        # The server runs as the postgres user, which cannot enter pytest's private temporary folders.
        self.root = Path(tempfile.mkdtemp(prefix="kerasd-pg-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "pgdata"
        self.data.mkdir()
        shutil.chown(self.data, "postgres")
        self.port = free_port()
        _as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        _as_postgres(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                     "-c", "CREATE DATABASE kerasd")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/kerasd"

    def start(self) -> None:
        _as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                     "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}", "start")

    def stop(self) -> None:
        _as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "-w",
                        "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        # An append-only file synced on every write: what the stream held survives the restart.
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
