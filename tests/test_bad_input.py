"""Bad input gets a clear problem document and loses nothing: no half-written rows, no dead worker."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.seed import (
    SEED_MODEL,
    fit_request,
    npy_bytes,
    npz_bytes,
    read_events,
    seed_arrays,
    upload,
    upload_seed,
    wait_for_job,
)

UNKNOWN = "0" * 32


def counts() -> dict[str, int]:
    from app.core.database import get_sessionmaker
    from app.core.tables import Blob, BlobChunk, Dataset, Job, ModelSpec

    with get_sessionmaker()() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table))
                for table in (Blob, BlobChunk, Dataset, Job, ModelSpec)}


def assert_problem(response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    assert "Traceback" not in response.text
    for needle in needles:
        assert needle in body["detail"], body
    return body


@pytest.fixture(scope="module")
def seed_ids(api_url):
    return upload_seed(api_url, seed_arrays())


@pytest.mark.parametrize("path", [
    f"/v1/models/{UNKNOWN}", f"/v1/models/{UNKNOWN}/architecture", f"/v1/datasets/{UNKNOWN}",
    f"/v1/datasets/{UNKNOWN}/content", f"/v1/jobs/{UNKNOWN}", f"/v1/jobs/{UNKNOWN}/artifacts",
    f"/v1/jobs/{UNKNOWN}/artifacts/weights.h5", f"/v1/jobs/{UNKNOWN}/events",
])
def test_unknown_ids_are_404(client, path):
    assert_problem(client.get(path), 404, UNKNOWN)


def test_malformed_json_is_422(client):
    response = client.post("/v1/models", content=b'{"layers": [', headers={"content-type": "application/json"})
    assert_problem(response, 422)


def test_missing_field_is_named(client, seed_ids):
    body = assert_problem(client.post("/v1/models", json={"type": "sequential"}), 422, "layers")
    assert [e["field"] for e in body["errors"]] == ["layers"]

    request = fit_request(seed_ids["model"], seed_ids["dataset"])
    del request["compile"]["loss"]
    body = assert_problem(client.post("/v1/jobs", json=request), 422, "compile.loss")
    assert "compile.loss" in [e["field"] for e in body["errors"]]


def test_unknown_and_unsafe_layers_are_refused(client):
    before = counts()
    unknown = {**SEED_MODEL, "layers": [{"class_name": "Densest", "units": 3}]}
    assert_problem(client.post("/v1/models", json=unknown), 422, "Densest")
    lam = {**SEED_MODEL, "layers": [{"class_name": "Lambda", "function": "os.system"}]}
    assert_problem(client.post("/v1/models", json=lam), 422, "Lambda")
    foreign = {**SEED_MODEL, "layers": [{"class_name": "Dense", "units": 3,
                                         "kernel_initializer": {"class_name": "Foo", "module": "os"}}]}
    assert_problem(client.post("/v1/models", json=foreign), 422, "'os'")
    keras_refuses = {**SEED_MODEL, "layers": [{"class_name": "Dense", "units": 3, "activation": "nope"}]}
    assert_problem(client.post("/v1/models", json=keras_refuses), 422, "nope")
    assert counts() == before


def test_corrupt_npy_is_422_and_stores_nothing(client):
    before = counts()
    whole = npy_bytes(np.ones((100, 72), dtype="float32"))
    assert_problem(upload(client, "x.npy", whole[:-10]), 422, "corrupt")
    assert_problem(upload(client, "x.npy", b"not an array at all"), 422)
    assert_problem(upload(client, "x.npz", b"PK\x03\x04 broken zip"), 422)
    assert_problem(upload(client, "x.txt", b"a,b\n1,2\n"), 422, ".npy")
    assert counts() == before


def test_pickled_npy_is_422_and_stores_nothing(client):
    before = counts()
    pickled = npy_bytes(np.array([{"a": 1}, "text"], dtype=object), allow_pickle=True)
    assert_problem(upload(client, "evil.npy", pickled), 422, "pickle")
    assert_problem(upload(client, "evil.npz", npz_bytes(x=np.array([None, 1], dtype=object))), 422, "pickle")
    assert counts() == before


def test_row_mismatch_is_422_at_submit(client, seed_ids):
    short_y = upload(client, "short_y.npy", npy_bytes(np.zeros((999, 10), dtype="float32"))).json()
    request = fit_request(seed_ids["model"], seed_ids["dataset"])
    request["fit"]["y"] = {"dataset_id": short_y["id"]}
    before = counts()
    assert_problem(client.post("/v1/jobs", json=request), 422, "1000", "999")
    assert counts() == before


def test_unknown_compile_names_are_422(client, seed_ids):
    request = fit_request(seed_ids["model"], seed_ids["dataset"])
    request["compile"]["optimizer"] = "adamx"
    before = counts()
    assert_problem(client.post("/v1/jobs", json=request), 422, "adamx")
    assert counts() == before


def test_failure_inside_keras_is_reported_and_the_worker_goes_on(client, seed_ids, worker):
    # A built model's shapes are checked at submit (tests/test_model_specs_shapes.py); a model without an
    # input shape is built from the data on the worker, so only Keras sees these 3-wide targets.
    unbuilt = client.post("/v1/models", json={k: v for k, v in SEED_MODEL.items() if k != "input_shape"}).json()
    wrong_width = upload(client, "wrong.npz", npz_bytes(x=np.zeros((50, 72), dtype="float32"),
                                                      y=np.zeros((50, 3), dtype="float32"))).json()
    request = fit_request(unbuilt["id"], seed_ids["dataset"], epochs=1)
    request["fit"].update(x={"dataset_id": wrong_width["id"], "array": "x"},
                          y={"dataset_id": wrong_width["id"], "array": "y"}, validation_data=None)
    failed = client.post("/v1/jobs", json=request).json()
    events = read_events(client, failed["id"])
    job = wait_for_job(client, failed["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "ValueError"
    # Keras's own words about the shape mismatch reach the user.
    assert "(None, 3)" in job["error"]["message"] and "(None, 10)" in job["error"]["message"]
    assert events[-1]["type"] == "failed" and events[-1]["data"]["error"] == job["error"]

    assert worker.alive()
    next_job = client.post("/v1/jobs", json=fit_request(seed_ids["model"], seed_ids["dataset"], epochs=2)).json()
    assert wait_for_job(client, next_job["id"])["status"] == "succeeded"
