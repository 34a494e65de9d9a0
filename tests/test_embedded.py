"""The README's run command (`scripts/up`, i.e. `kerasd up`): SQLite, its own Redis, API and worker."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.services import embedded_stack
from tests.test_seed_fit import run_seed_example


def test_seed_example_in_embedded_mode(tmp_path: Path) -> None:
    with embedded_stack(tmp_path) as stack:
        with httpx.Client(base_url=stack.url, timeout=120) as client:
            run_seed_example(client, tmp_path)
            version = client.get("/version").json()
            assert version["keras"].startswith("3.") and version["backend"] == "tensorflow"
            assert len(version["workers"]) == 1
        assert (stack.data_dir / "kerasd.db").exists()
    # Stopping `up` stops its Redis too.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", stack.redis_port)) != 0, stack.process.log_text()[-3000:]
