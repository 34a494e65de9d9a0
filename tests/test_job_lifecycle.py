"""Callbacks (tutorial §4.4), cancel, retry, listing and deleting jobs, against the real worker."""

from __future__ import annotations

import io
import re
import tarfile

import numpy as np
import pytest

from tests.holds import wait_until
from tests.seed import SEED_MODEL, fit_request, npz_bytes, ref, seed_arrays, submit, upload, upload_seed, wait_for_job


@pytest.fixture(scope="module")
def ids(api_url):
    return upload_seed(api_url, seed_arrays())


def test_early_stopping_says_where_it_stopped(client, ids):
    """EarlyStopping(patience=2, monitor='val_loss') on random labels: val_loss soon stops improving."""
    request = fit_request(ids["model"], ids["dataset"], epochs=40)
    request["compile"]["optimizer"] = {"class_name": "Adam", "config": {"learning_rate": 0.05}}
    request["callbacks"] = [
        {"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 2, "restore_best_weights": True}}
    ]
    job = wait_for_job(client, submit(client, request))
    assert job["status"] == "succeeded", job["error"]
    stopped = job["result"]["early_stopping"]
    assert 3 <= stopped["stopped_epoch"] < 40
    assert len(job["history"]["loss"]) == stopped["stopped_epoch"]
    assert stopped["best_epoch"] == stopped["stopped_epoch"] - 2
    assert stopped["restored_best_weights"] is True


def test_declared_callbacks_leave_their_files(client, ids):
    request = fit_request(ids["model"], ids["dataset"], epochs=4)
    request["callbacks"] = [
        {
            "class_name": "ReduceLROnPlateau",
            "config": {"monitor": "loss", "patience": 0, "factor": 0.5, "min_delta": 10.0},
        },
        {"class_name": "ModelCheckpoint", "config": {"monitor": "val_loss", "save_best_only": True}},
        {"class_name": "TensorBoard", "config": {"histogram_freq": 1}},
        {"class_name": "CSVLogger", "config": {"separator": ";"}},
    ]
    job = wait_for_job(client, submit(client, request))
    assert job["status"] == "succeeded", job["error"]
    # ReduceLROnPlateau halves the rate after every epoch that improved the loss by less than 10 (all but the
    # first); Keras logs each epoch's rate before it reduces it.
    assert job["history"]["learning_rate"] == pytest.approx([0.001, 0.001, 0.0005, 0.00025])
    names = {a["name"] for a in client.get(f"/v1/jobs/{job['id']}/artifacts").json()}
    assert {"checkpoint.weights.h5", "tensorboard.tar.gz", "history.csv"} <= names
    csv_lines = client.get(f"/v1/jobs/{job['id']}/artifacts/history.csv").text.splitlines()
    assert csv_lines[0].startswith("epoch;") and len(csv_lines) == 5
    archive = tarfile.open(fileobj=io.BytesIO(client.get(f"/v1/jobs/{job['id']}/artifacts/tensorboard.tar.gz").content))
    assert any("events.out.tfevents" in member.name for member in archive.getmembers())


def test_learning_rate_scheduler_from_a_declared_schedule(client, ids):
    request = fit_request(ids["model"], ids["dataset"], epochs=3)
    request["callbacks"] = [
        {
            "class_name": "LearningRateScheduler",
            "config": {
                "schedule": {
                    "class_name": "ExponentialDecay",
                    "config": {"initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 0.5},
                }
            },
        }
    ]
    job = wait_for_job(client, submit(client, request))
    assert job["status"] == "succeeded", job["error"]
    assert job["history"]["learning_rate"] == pytest.approx([0.01, 0.005, 0.0025])


def test_terminate_on_nan_fails_the_job_with_the_reason(client):
    rng = np.random.default_rng(1)
    data = upload(
        client,
        "reg.npz",
        npz_bytes(x=rng.normal(size=(256, 8)).astype("float32") * 100, y=rng.normal(size=(256, 1)).astype("float32")),
    ).json()
    model = client.post(
        "/v1/models",
        json={
            "type": "sequential",
            "input_shape": [8],
            "layers": [{"class_name": "Dense", "units": 16, "activation": "relu"}, {"class_name": "Dense", "units": 1}],
        },
    ).json()
    request = {
        "kind": "fit",
        "model_id": model["id"],
        "seed": 3,
        "compile": {"optimizer": {"class_name": "SGD", "config": {"learning_rate": 1e6}}, "loss": "mse"},
        "fit": {"x": ref(data["id"], "x"), "y": ref(data["id"], "y"), "epochs": 20, "batch_size": 16},
        "callbacks": [{"class_name": "TerminateOnNaN"}],
    }
    job = wait_for_job(client, submit(client, request))
    assert job["status"] == "failed"
    assert job["error"]["type"] == "TerminateOnNaN"
    where = re.fullmatch(
        r"TerminateOnNaN stopped training: the loss became (nan|inf|-inf) at epoch (\d+), batch "
        r"(\d+)\. Lower the learning rate or check the data\.",
        job["error"]["message"],
    )
    assert where, job["error"]["message"]
    epochs_recorded = len(job["history"].get("loss", []))
    # The epoch it names is the one that stopped (1-based), counted in the history or cut short before it.
    assert epochs_recorded < 20 and int(where.group(2)) in (epochs_recorded, epochs_recorded + 1), (where, job)
    assert 1 <= int(where.group(3)) <= 256 // 16


def test_cancel_running_and_queued_jobs_then_retry(client, ids):
    # Trains until cancelled: still running when the test cancels it, however fast the machine trains.
    long_request = fit_request(ids["model"], ids["dataset"], epochs=100_000, batch_size=10)
    long_id = submit(client, long_request)
    queued_id = submit(client, fit_request(ids["model"], ids["dataset"], epochs=2))
    wait_until(lambda: client.get(f"/v1/jobs/{long_id}").json()["epochs"])
    queued = client.get(f"/v1/jobs/{queued_id}").json()
    assert queued["status"] == "queued" and queued["queue_position"] >= 1

    # A queued job is cancelled at once, and the worker skips it later.
    cancelled = client.post(f"/v1/jobs/{queued_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["queue_position"] is None

    # A running job stops at the end of the batch during which the request reached its worker.
    response = client.post(f"/v1/jobs/{long_id}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested_at"]
    job = wait_for_job(client, long_id, timeout_s=60)
    assert job["status"] == "cancelled"
    stopped = job["result"]["cancelled"]
    assert len(job["epochs"]) == stopped["epoch"] < 100_000 and 1 <= stopped["batch"] <= 100
    assert "weights.h5" in {a["name"] for a in client.get(f"/v1/jobs/{long_id}/artifacts").json()}
    assert client.post(f"/v1/jobs/{long_id}/cancel").status_code == 409

    retried = client.post(f"/v1/jobs/{queued_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    done = wait_for_job(client, queued_id)
    assert done["status"] == "succeeded" and len(done["epochs"]) == 2
    assert client.post(f"/v1/jobs/{queued_id}/retry").status_code == 409


def test_list_filters_and_delete(client, ids):
    other_model = client.post("/v1/models", json=SEED_MODEL).json()["id"]
    job_id = submit(client, fit_request(other_model, ids["dataset"], epochs=1))
    assert wait_for_job(client, job_id)["status"] == "succeeded"
    listed = client.get("/v1/jobs", params={"model_id": other_model, "status": "succeeded"}).json()
    assert [j["id"] for j in listed["items"]] == [job_id] and listed["total"] == 1
    assert client.get("/v1/jobs", params={"model_id": other_model, "status": "failed"}).json()["total"] == 0
    assert client.delete(f"/v1/models/{other_model}").status_code == 409

    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/artifacts/weights.h5").status_code == 404
    assert client.delete(f"/v1/models/{other_model}").status_code == 204


def test_a_cancel_asked_before_the_worker_listens_still_stops_the_job(client, ids, server_env, tmp_path):
    """A cancel that reaches a claimed job before its worker subscribes to the job's control channel is published
    to nobody; the worker reads the request from the row once it listens, and stops in its first epoch."""
    import redis

    from app.core.settings import get_settings
    from workers import jobstate
    from workers.array_cache import ArrayCache
    from workers.runner import JobRun
    from workers.scheduling import claim_next

    # The one-GPU queue has no worker here: this test claims the job itself, as a worker's turn would.
    job_id = submit(
        client, fit_request(ids["model"], ids["dataset"], epochs=300, batch_size=10) | {"resources": {"gpus": 1}}
    )
    settings = get_settings()
    claimed = claim_next(
        hint_job_id=job_id, queue=f"{server_env['KERASD_QUEUE']}.gpu", owner="test-claimer", settings=settings
    )
    assert claimed == (job_id, 1)
    asked = client.post(f"/v1/jobs/{job_id}/cancel")
    assert asked.status_code == 202 and asked.json()["status"] == "running" and asked.json()["cancel_requested_at"]

    run = JobRun(
        job_id,
        1,
        settings=settings,
        redis_client=redis.Redis.from_url(settings.redis_url),
        cache=ArrayCache(tmp_path / "cache", max_bytes=1 << 30),
        owner="test-claimer",
    )
    try:
        outcome = run.execute(tmp_path)
    finally:
        run.close()
    assert outcome.status == "cancelled"
    # Stopped in its first epoch of 300 (at the end of the first step the tuner runs, which may span the epoch).
    assert outcome.result["cancelled"]["epoch"] == 1 and outcome.result["epochs_run"] <= 1
    jobstate.end(status=outcome.status, result=outcome.result, chunk_bytes=settings.chunk_bytes, **run.fenced)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
