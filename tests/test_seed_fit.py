"""The seed's §3.2 example end to end: real API, real Celery worker, PostgreSQL and Redis."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.seed import SEED_MODEL, fit_request, npz_bytes, read_events, seed_arrays, upload


def run_seed_example(client: httpx.Client, tmp_path: Path) -> None:
    arrays = seed_arrays()
    dataset = upload(client, "seed.npz", npz_bytes(**arrays))
    assert dataset.status_code == 201, dataset.text
    dataset = dataset.json()
    assert {a["name"]: a["shape"] for a in dataset["arrays"]} == {
        "train_x": [1000, 72], "train_y": [1000, 10], "val_x": [200, 72], "val_y": [200, 10]}

    model = client.post("/v1/models", json=SEED_MODEL)
    assert model.status_code == 201, model.text
    summary = model.json()["summary"]
    assert summary["total_params"] == 72 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert [layer["output_shape"] for layer in summary["layers"]] == [[None, 32], [None, 32], [None, 10]]

    created = client.post("/v1/jobs", json=fit_request(model.json()["id"], dataset["id"]))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    events = read_events(client, job_id)
    types = [e["type"] for e in events]
    assert types[0] == "queued" and "started" in types and types[-1] == "finished", types
    epoch_events = [e for e in events if e["type"] == "epoch"]
    assert [e["data"]["epoch"] for e in epoch_events] == list(range(10))
    assert all(e["v"] == 1 and e["job_id"] == job_id for e in events)

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    history = job["history"]
    assert set(history) == {"loss", "val_loss", "categorical_accuracy", "val_categorical_accuracy"}
    assert all(len(values) == 10 for values in history.values())
    assert history["val_loss"] == [e["data"]["logs"]["val_loss"] for e in epoch_events]

    names = {a["name"] for a in client.get(f"/v1/jobs/{job_id}/artifacts").json()}
    assert {"weights.h5", "architecture.json"} <= names
    architecture = client.get(f"/v1/jobs/{job_id}/artifacts/architecture.json")
    weights = client.get(f"/v1/jobs/{job_id}/artifacts/weights.h5")
    assert architecture.status_code == weights.status_code == 200
    assert 'filename="model.weights.h5"' in weights.headers["content-disposition"]
    weights_path = tmp_path / "model.weights.h5"
    weights_path.write_bytes(weights.content)

    import keras

    local = keras.models.model_from_json(architecture.text)
    local.load_weights(weights_path)
    local.compile(loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    loss, accuracy = local.evaluate(arrays["val_x"], arrays["val_y"], batch_size=100, verbose=0)
    assert loss == pytest.approx(history["val_loss"][-1], rel=1e-4)
    assert accuracy == pytest.approx(history["val_categorical_accuracy"][-1], abs=1e-6)
    assert np.isfinite(history["loss"]).all()


def test_seed_3_2_fit_over_http(client: httpx.Client, tmp_path: Path) -> None:
    run_seed_example(client, tmp_path)
