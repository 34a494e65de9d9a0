"""Worker options: time limits, running out of memory, precision, distribution, queues by
resource and priorities (workers on other Keras backends: tests/test_backends.py)."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pytest

from tests.seed import (
    fit_request,
    npz_bytes,
    read_events,
    ref,
    seed_arrays,
    submit,
    upload,
    upload_seed,
    wait_for_job,
)
from tests.test_fault_tolerance import Stack, seed_ids


@pytest.fixture(scope="module")
def ids(api_url):
    return upload_seed(api_url, seed_arrays())


def test_time_limit_stops_keeps_the_checkpoint_and_fails(client, ids):
    # More epochs than any machine trains in the limit, and a limit that leaves loading the data and building
    # the model (inside it) ample time to finish at least one epoch, loaded machine or not.
    epochs = 100_000
    job_id = submit(client, fit_request(ids["model"], ids["dataset"], epochs=epochs, batch_size=10)
                    | {"time_limit_s": 15})
    job = wait_for_job(client, job_id, timeout_s=180)
    assert job["status"] == "failed" and job["error"]["type"] == "timeout"
    assert "time limit of 15 s" in job["error"]["message"]
    assert 1 <= len(job["epochs"]) < epochs
    assert "weights.h5" in {a["name"] for a in client.get(f"/v1/jobs/{job_id}/artifacts").json()}
    from app.core.database import get_sessionmaker
    from app.core.tables import JobCheckpoint

    with get_sessionmaker()() as session:
        checkpoint = session.get(JobCheckpoint, job_id)
    assert checkpoint is not None and checkpoint.epoch == len(job["epochs"]) - 1


def test_running_out_of_memory_is_resource_exhausted_and_the_worker_lives(client, ids, worker):
    # A model without an input shape is built on the worker from the data: Dense(1,000,000) over 10,000
    # features is 10 billion weights, 40 GB, more than the host has.
    data = upload(client, "wide.npz", npz_bytes(x=np.zeros((4, 10_000), dtype="float32"),
                                                y=np.zeros((4, 1), dtype="float32"))).json()
    model = client.post("/v1/models", json={"type": "sequential", "layers": [
        {"class_name": "Dense", "units": 1_000_000}, {"class_name": "Dense", "units": 1}]}).json()
    job_id = submit(client, {"model_id": model["id"], "compile": {"optimizer": "sgd", "loss": "mse"},
                             "fit": {"x": ref(data["id"], "x"), "y": ref(data["id"], "y")}})
    job = wait_for_job(client, job_id, timeout_s=180)
    assert job["status"] == "failed" and job["error"]["type"] == "resource_exhausted", job["error"]
    assert "smaller batch_size" in job["error"]["message"]
    assert worker.alive()
    after = submit(client, fit_request(ids["model"], ids["dataset"], epochs=1))
    assert wait_for_job(client, after)["status"] == "succeeded"


def test_mixed_precision_and_mirrored_strategy(client, ids):
    job_id = submit(client, fit_request(ids["model"], ids["dataset"], epochs=2)
                    | {"mixed_precision": "mixed_bfloat16", "distribution": "mirrored"})
    events = read_events(client, job_id)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    architecture = client.get(f"/v1/jobs/{job_id}/artifacts/architecture.json").json()
    policies = {layer["config"]["dtype"]["config"]["name"] for layer in architecture["config"]["layers"]
                if isinstance(layer["config"].get("dtype"), dict)}
    assert policies == {"mixed_bfloat16"}
    assert any(e["type"] == "log" and "MirroredStrategy" in str(e["data"]) for e in events)


def test_a_gpu_job_waits_for_a_gpu_worker(client, ids):
    job_id = submit(client, fit_request(ids["model"], ids["dataset"], epochs=1) | {"resources": {"gpus": 1}})
    # The CPU worker serves only the CPU queue: the job stays queued rather than running without its GPU.
    later = submit(client, fit_request(ids["model"], ids["dataset"], epochs=1))
    assert wait_for_job(client, later)["status"] == "succeeded"
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"


def test_higher_priority_runs_first(server_env, logs_dir):
    stack = Stack({**server_env, "KERASD_QUEUE": f"kerasd-prio-{uuid.uuid4().hex[:8]}"}, logs_dir)
    try:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            ids = seed_ids(client)
            # With no worker yet, all three wait in the queue; the worker then takes the most urgent first.
            low = submit(client, fit_request(ids["model"], ids["dataset"], epochs=1) | {"priority": 1})
            normal = submit(client, fit_request(ids["model"], ids["dataset"], epochs=1))
            high = submit(client, fit_request(ids["model"], ids["dataset"], epochs=1) | {"priority": 9})
            stack.worker()
            started = {job_id: wait_for_job(client, job_id)["started_at"] for job_id in (low, normal, high)}
        assert sorted(started, key=started.get) == [high, normal, low]
    finally:
        stack.stop()
