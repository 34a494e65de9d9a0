"""The README's run command (`scripts/up`, i.e. `kerasd up`): SQLite, its own Redis, API and worker."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import httpx

from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, submit, upload, wait_for_job
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


def test_a_running_job_outlives_a_write_lock_held_past_sqlites_busy_timeout(tmp_path: Path) -> None:
    """Another process holds SQLite's one write lock for 5 s, five times the busy timeout, while a job records
    its epochs and checkpoints: the worker's writes fail with "database is locked" and are retried (the README's
    promise), so the job ends `succeeded` with every epoch instead of `failed`."""
    epochs = 30
    with embedded_stack(tmp_path, {"KERASD_SQLITE_BUSY_TIMEOUT_S": "1"}) as stack:
        with httpx.Client(base_url=stack.url, timeout=120) as client:
            dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays()))
            model = client.post("/v1/models", json=SEED_MODEL)
            assert dataset.status_code == model.status_code == 201, (dataset.text, model.text)
            job_id = submit(client, fit_request(model.json()["id"], dataset.json()["id"], epochs=epochs))
            deadline = time.monotonic() + 300
            while not (job := client.get(f"/v1/jobs/{job_id}").json())["epochs"]:
                assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
                time.sleep(0.1)
            assert job["status"] == "running" and len(job["epochs"]) < epochs, "the lock must fall inside the job"

            holder = sqlite3.connect(stack.data_dir / "kerasd.db", isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")  # the write lock, as a stalled writer holds it
                time.sleep(5)
                # Readers go on under the lock (WAL): the job is still running, not failed.
                assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
            finally:
                holder.rollback()
                holder.close()

            job = wait_for_job(client, job_id)
            assert job["status"] == "succeeded", job["error"]
            # In its first attempt: not rescued by the lease running out and a second attempt.
            assert job["attempt"] == 1 and [(e["epoch"], e["attempt"]) for e in job["epochs"]] == \
                [(epoch, 1) for epoch in range(epochs)]
        log = stack.process.log_text()
        assert "database unavailable during" in log and "retrying" in log, log[-3000:]
