"""The README's run command (`scripts/up`, i.e. `kerasd up`): SQLite, its own Redis, API and worker."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.services import Process, free_port
from tests.test_seed_fit import run_seed_example

ROOT = Path(__file__).resolve().parent.parent


def test_seed_example_in_embedded_mode(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    # Nothing of the test session's servers: `up` must bring its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASD_")}
    env["KERASD_VENV"] = sys.prefix
    data_dir = tmp_path / "data"
    up = Process([str(ROOT / "scripts" / "up"), "--port", str(port), "--redis-port", str(redis_port),
                  "--data-dir", str(data_dir)], env, tmp_path / "up.log")
    try:
        up.wait_for_log("kerasd is up", timeout_s=300)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            run_seed_example(client, tmp_path)
            version = client.get("/version").json()
            assert version["keras"].startswith("3.") and version["backend"] == "tensorflow"
            assert len(version["workers"]) == 1
        assert (data_dir / "kerasd.db").exists()
    finally:
        up.popen.send_signal(signal.SIGTERM)
        up.popen.wait(timeout=60)
    # Stopping `up` stops its Redis too.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", redis_port)) != 0, up.log_text()[-3000:]
