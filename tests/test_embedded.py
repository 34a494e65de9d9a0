"""The README's run command (`scripts/up`, i.e. `kerasd up`): SQLite, its own Redis, API and worker."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import httpx

from tests.holds import wait_until
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
    promise), so the job goes on recording every epoch in its first attempt instead of failing. The job trains
    until the test cancels it, so the lock falls inside it however fast the machine trains."""
    with embedded_stack(tmp_path, {"KERASD_SQLITE_BUSY_TIMEOUT_S": "1"}) as stack:
        with httpx.Client(base_url=stack.url, timeout=120) as client:
            dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays()))
            model = client.post("/v1/models", json=SEED_MODEL)
            assert dataset.status_code == model.status_code == 201, (dataset.text, model.text)
            job_id = submit(client, fit_request(model.json()["id"], dataset.json()["id"], epochs=100_000))

            def first_epoch_or_end() -> dict | None:
                job = client.get(f"/v1/jobs/{job_id}").json()
                return job if job["epochs"] or job["status"] not in ("queued", "running") else None

            job = wait_until(first_epoch_or_end, timeout_s=300, what="the job's first epoch recorded")
            assert job["status"] == "running", job

            holder = sqlite3.connect(stack.data_dir / "kerasd.db", isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")  # the write lock, as a stalled writer holds it
                time.sleep(5)
                # Readers go on under the lock (WAL): the job is still running, not failed.
                assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
            finally:
                holder.rollback()
                holder.close()

            # It records epochs again once the lock is gone, then stops where it is cancelled.
            after_lock = len(client.get(f"/v1/jobs/{job_id}").json()["epochs"])
            wait_until(lambda: len(client.get(f"/v1/jobs/{job_id}").json()["epochs"]) > after_lock,
                       timeout_s=120, what="an epoch recorded after the lock")
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
            job = wait_for_job(client, job_id)
            assert job["status"] == "cancelled", job["error"]
            # In its first attempt: not rescued by the lease running out and a second attempt; no epoch lost.
            assert job["attempt"] == 1 and [(e["epoch"], e["attempt"]) for e in job["epochs"]] == \
                [(epoch, 1) for epoch in range(len(job["epochs"]))]
            assert len(job["epochs"]) > after_lock
        log = stack.process.log_text()
        assert "database unavailable during" in log and "retrying" in log, log[-3000:]
