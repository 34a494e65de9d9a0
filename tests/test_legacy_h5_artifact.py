"""The legacy `model.h5` is made only for a fit job that asks for it, so no other job logs Keras's legacy warning."""

from __future__ import annotations

import pytest

from tests.seed import fit_request, run, seed_arrays, upload_seed

# What Keras logs each time it writes a whole model as HDF5 (keras/src/saving/saving_api.py).
LEGACY_WARNING = "This file format is considered legacy"


@pytest.fixture(scope="module")
def ids(api_url):
    return upload_seed(api_url, seed_arrays())


def run_logged(client, worker, request) -> tuple[dict, set[str], str]:
    """The job, its artifacts' names, and what the worker logged while it ran (the worker runs one job at a time)."""
    start = len(worker.log_text())
    job = run(client, request)
    names = {item["name"] for item in client.get(f"/v1/jobs/{job['id']}/artifacts").json()}
    return job, names, worker.log_text()[start:]


def test_a_default_fit_makes_no_legacy_h5_and_logs_no_warning(client, worker, ids):
    job, names, logged = run_logged(client, worker, fit_request(ids["model"], ids["dataset"], epochs=1))
    assert names >= {"weights.h5", "model.keras", "architecture.json", "architecture.yaml", "history.csv"}
    assert "model.h5" not in names
    assert job["request"].get("artifacts") is None
    assert LEGACY_WARNING not in logged, logged[-2000:]


def test_a_fit_that_asks_for_model_h5_gets_it(client, worker, ids, tmp_path):
    import keras

    request = fit_request(ids["model"], ids["dataset"], epochs=1)
    request["artifacts"] = ["model.keras", "model.h5"]
    job, names, logged = run_logged(client, worker, request)
    assert {"model.keras", "model.h5"} <= names
    path = tmp_path / "model.h5"
    path.write_bytes(client.get(f"/v1/jobs/{job['id']}/artifacts/model.h5").content)
    summary = client.get(f"/v1/models/{ids['model']}").json()["summary"]
    assert keras.models.load_model(path).count_params() == summary["total_params"]
    # Keras says it here, where the user asked for the legacy format: the check above can see it.
    assert LEGACY_WARNING in logged
