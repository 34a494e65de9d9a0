"""Workers that die (issue 8): resume from checkpoint, fencing of duplicate deliveries, max_attempts.

These tests run a stack of their own (API and workers on a queue of their own, a short lease and a quick
reaper) against the session's PostgreSQL database and Redis, and kill workers with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.holds import paused, step_until
from tests.keras_local import trained_model
from tests.seed import SEED_MODEL, fit_request, npz_bytes, read_events, seed_arrays, upload, wait_for_job
from tests.services import Process, free_port, kerasd_command


class Stack:
    """An API and any number of workers sharing one queue and the fault-test settings."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.workers: list[Process] = []
        port = free_port()
        self.api = Process(kerasd_command("api", "--port", str(port)), env, logs / f"api-{port}.log")
        self.url = f"http://127.0.0.1:{port}"
        self.api.wait_for_http(f"{self.url}/health", timeout_s=120)

    def worker(self, **env: str) -> Process:
        name = f"fault-{uuid.uuid4().hex[:6]}"
        process = Process(kerasd_command("worker", "--gpus", "none", "--name", f"{name}@%h"), {**self.env, **env},
                          self.logs / f"{name}.log")
        process.wait_for_log(" ready.", timeout_s=180)
        self.workers.append(process)
        return process

    def stop(self) -> None:
        for process in [*self.workers, self.api]:
            process.stop()


@pytest.fixture()
def stack(server_env, logs_dir) -> Iterator[Stack]:
    env = {**server_env, "KERASD_QUEUE": f"kerasd-fault-{uuid.uuid4().hex[:8]}", "KERASD_LEASE_SECONDS": "3",
           "KERASD_REAPER_INTERVAL_S": "0.5"}
    built = Stack(env, logs_dir)
    try:
        yield built
    finally:
        built.stop()


def kill(process: Process) -> None:
    os.kill(process.popen.pid, signal.SIGKILL)
    process.popen.wait(timeout=10)


def kill_after_two_epochs(client: httpx.Client, worker: Process, job_id: str, *, epochs: int) -> dict:
    """The job as read just before its worker was killed: running, two or more of its `epochs` recorded, fewer
    than all. Stopped between short slices of its time, the worker is killed where the test read it, however fast
    it trains."""

    def two_epochs_or_end() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if len(job["epochs"]) >= 2 or job["status"] not in ("queued", "running") else None

    with paused(worker.popen.pid) as run_for:
        seen = step_until(run_for, two_epochs_or_end, timeout_s=120, what="two epochs recorded")
        assert seen["status"] == "running" and 2 <= len(seen["epochs"]) < epochs, seen
        # Killed while stopped (not yet reaped, so the group is still there for `paused` to continue).
        os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(timeout=10)
    return seen


def wait_for(predicate, timeout_s: float = 120, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("condition not reached in time")


def seed_ids(client: httpx.Client) -> dict[str, str]:
    dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()
    model = client.post("/v1/models", json=SEED_MODEL).json()
    return {"dataset": dataset["id"], "model": model["id"]}


def slow_fit(ids: dict[str, str], *, epochs: int = 10, **job) -> dict:
    # 100 batches an epoch, unshuffled: epochs long enough to kill a worker inside one, and a data order a
    # resumed attempt replays exactly. Untuned: execution tuning runs such an epoch in one 0.1 s execution.
    return fit_request(ids["model"], ids["dataset"], epochs=epochs, batch_size=10, shuffle=False) | {
        "tuning": False, **job}


def test_killed_worker_is_resumed_from_its_checkpoint(stack, tmp_path):
    first = stack.worker()
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        ids = seed_ids(client)
        job_id = client.post("/v1/jobs", json=slow_fit(ids)).json()["id"]
        seen = kill_after_two_epochs(client, first, job_id, epochs=10)
        stack.worker()
        job = wait_for_job(client, job_id, timeout_s=180)
        assert job["status"] == "succeeded", job["error"]
        assert job["attempt"] == 2
        assert [e["epoch"] for e in job["epochs"]] == list(range(10))
        assert job["result"]["resumed_from_epoch"] in (len(seen["epochs"]), len(seen["epochs"]) + 1)
        assert len(job["history"]["loss"]) == 10
        # The second attempt said where it resumed, and it is where the result says it started.
        resumed = job["result"]["resumed_from_epoch"]
        logs = [e["data"]["message"] for e in read_events(client, job_id) if e["type"] == "log"]
        assert f"attempt 2 resumes after epoch {resumed} from the checkpoint of attempt 1" in logs, logs

        uninterrupted = client.post("/v1/jobs", json=slow_fit(ids)).json()["id"]
        assert wait_for_job(client, uninterrupted, timeout_s=180)["status"] == "succeeded"
        resumed_weights = trained_model(client, job_id, tmp_path).get_weights()
        whole_weights = trained_model(client, uninterrupted, tmp_path).get_weights()
        for a, b in zip(resumed_weights, whole_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        expected = client.get(f"/v1/jobs/{uninterrupted}").json()["history"]["loss"]
        np.testing.assert_allclose(job["history"]["loss"], expected, rtol=1e-6)


def test_a_message_delivered_twice_runs_once(server_env, logs_dir):
    # Redis hands the unacknowledged message to the idle worker after 1 s while the first still trains.
    env = {**server_env, "KERASD_QUEUE": f"kerasd-dup-{uuid.uuid4().hex[:8]}",
           "KERASD_BROKER_VISIBILITY_TIMEOUT_S": "1", "KERASD_BROKER_RESTORE_INTERVAL_S": "1"}
    stack = Stack(env, logs_dir)
    try:
        workers = [stack.worker(), stack.worker()]
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            ids = seed_ids(client)
            # Trains until cancelled, so the message is still unacknowledged when Redis hands it out again.
            job_id = client.post("/v1/jobs", json=slow_fit(ids, epochs=100_000)).json()["id"]
            # The idle worker receives the same message again and finds the job taken.
            wait_for(lambda: any("is not claimable" in w.log_text() for w in workers), timeout_s=120)
            # The first worker goes on training it: another epoch is recorded after the second delivery.
            recorded = len(client.get(f"/v1/jobs/{job_id}").json()["epochs"])
            wait_for(lambda: len(client.get(f"/v1/jobs/{job_id}").json()["epochs"]) > recorded)
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
            job = wait_for_job(client, job_id, timeout_s=180)
        assert job["status"] == "cancelled" and job["attempt"] == 1
        assert [e["epoch"] for e in job["epochs"]] == list(range(len(job["epochs"])))
        assert {e["attempt"] for e in job["epochs"]} == {1}
        assert all(w.alive() for w in workers)
    finally:
        stack.stop()


def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(stack):
    worker = stack.worker()
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        ids = seed_ids(client)
        job_id = client.post("/v1/jobs", json=slow_fit(ids, epochs=50) | {"max_attempts": 2}).json()["id"]
        for attempt in (1, 2):
            wait_for(lambda a=attempt: client.get(f"/v1/jobs/{job_id}").json()["attempt"] == a
                     and client.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
            kill(worker)
            worker = stack.worker()
        job = wait_for_job(client, job_id, timeout_s=120)
        assert job["status"] == "failed" and job["attempt"] == 2
        assert job["error"]["type"] == "WorkerLost" and "max_attempts=2" in job["error"]["message"]
        # The queue drains: the next job runs on the surviving worker.
        next_id = client.post("/v1/jobs", json=fit_request(ids["model"], ids["dataset"], epochs=1)).json()["id"]
        assert wait_for_job(client, next_id)["status"] == "succeeded"
