"""Datasets (issue 4): CSV, limits, dedup, content back, in-use deletes, and the worker's bounded cache."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.keras_local import assert_history_equal, assert_weights_equal, local_model, seeded, trained_model
from tests.seed import SEED_MODEL, fit_request, npy_bytes, npz_bytes, seed_arrays, upload, wait_for_job
from tests.services import Process, free_port, kerasd_command
from tests.test_bad_input import assert_problem, counts
from tests.test_training_jobs import compile_locally


def test_csv_columns_become_x_and_y(client):
    content = b"sepal,petal,species,label\n1.5,2,setosa,0\n3,4.25,virginica,1\n5,6,setosa,0\n"
    response = client.post("/v1/datasets", files={"file": ("iris.csv", content)},
                           data={"x_columns": "sepal,petal", "y_columns": "label"})
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert {a["name"]: (a["shape"], a["dtype"]) for a in dataset["arrays"]} == {
        "x": ([3, 2], "float32"), "y": ([3, 1], "float32")}
    stored = np.load(io.BytesIO(client.get(f"/v1/datasets/{dataset['id']}/content").content))
    np.testing.assert_array_equal(stored["x"], [[1.5, 2], [3, 4.25], [5, 6]])


def test_csv_with_a_non_numeric_feature_is_422_and_stores_nothing(client):
    before = counts()
    content = b"a,b,label\n1,x,0\n2,3,1\n"
    assert_problem(client.post("/v1/datasets", files={"file": ("bad.csv", content)}, data={"y_columns": "label"}),
                   422, "'b'", "not numeric")
    assert_problem(client.post("/v1/datasets", files={"file": ("bad.csv", content)},
                               data={"x_columns": "a,missing"}), 422, "missing")
    assert counts() == before


def test_limits_on_rank_and_arrays(client):
    before = counts()
    assert_problem(upload(client, "deep.npy", npy_bytes(np.zeros((1,) * 9, dtype="float32"))), 422, "rank 9")
    many = {f"a{i}": np.zeros(1, dtype="float32") for i in range(257)}
    assert_problem(upload(client, "many.npz", npz_bytes(**many)), 422, "257 arrays")
    assert_problem(upload(client, "magic.npy", b"\x93NUMPX" + b"\0" * 100), 422)
    assert counts() == before


def test_same_bytes_are_stored_once_and_come_back_whole(client):
    from app.core.database import get_sessionmaker
    from app.core.tables import Blob

    content = npz_bytes(a=np.arange(1000, dtype="float32"), b=np.ones((10, 3), dtype="int64"))
    first = upload(client, "one.npz", content).json()
    second = upload(client, "again.npz", content).json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    with get_sessionmaker()() as session:
        assert session.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == first["sha256"])) == 1
    back = client.get(f"/v1/datasets/{second['id']}/content")
    assert back.content == content and back.headers["content-length"] == str(len(content))


def test_deleting_a_dataset_in_use_is_409(client):
    dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()
    model = client.post("/v1/models", json=SEED_MODEL).json()
    job = client.post("/v1/jobs", json=fit_request(model["id"], dataset["id"], epochs=300, batch_size=10)).json()
    assert_problem(client.delete(f"/v1/datasets/{dataset['id']}"), 409, job["id"])
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert wait_for_job(client, job["id"])["status"] == "cancelled"
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404


def test_a_second_job_on_the_same_data_reads_nothing_from_sql(client, worker):
    arrays = seed_arrays(seed=11)
    dataset = upload(client, "cached.npz", npz_bytes(**arrays)).json()
    model = client.post("/v1/models", json=SEED_MODEL).json()
    for _ in range(2):
        job = client.post("/v1/jobs", json=fit_request(model["id"], dataset["id"], epochs=1)).json()
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    fetched = re.findall(rf"dataset blob {dataset['sha256']} fetched from SQL", worker.log_text())
    assert len(fetched) == 1


def test_cache_evicts_least_recently_used(server_env, tmp_path):
    from app.core.blobs import store_bytes
    from app.core.database import get_sessionmaker
    from workers.array_cache import ArrayCache

    blobs = []
    with get_sessionmaker()() as session:
        for seed in range(3):
            content = npy_bytes(np.random.default_rng(seed + 100).random(2000).astype("float32"))
            blobs.append(store_bytes(session, data=content, chunk_bytes=4096).sha256)
        session.commit()
    cache = ArrayCache(tmp_path / "cache", max_bytes=20_000)  # room for two of the three 8 KB arrays
    first = cache.array({"sha256": blobs[0], "format": "npy"})
    cache.array({"sha256": blobs[1], "format": "npy"})
    cache.array({"sha256": blobs[0], "format": "npy"})  # blob 0 is now the most recently used
    cache.array({"sha256": blobs[2], "format": "npy"})
    present = {path.name.split(".")[0] for path in (tmp_path / "cache").iterdir()}
    assert present == {blobs[0], blobs[2]}
    assert float(first[0]) == float(np.random.default_rng(100).random(2000).astype("float32")[0])
    assert cache.fetched_from_sql == 3


def test_over_the_upload_limit_is_413(server_env, logs_dir):
    env = {**server_env, "KERASD_MAX_UPLOAD_BYTES": "1000"}
    port = free_port()
    api = Process(kerasd_command("api", "--port", str(port)), env, logs_dir / "api-small-limit.log")
    try:
        api.wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=60)
        import httpx

        before = counts()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as small:
            body = assert_problem(upload(small, "big.npy", npy_bytes(np.zeros(1000, dtype="float32"))), 413, "1,000")
        assert "KERASD_MAX_UPLOAD_BYTES" in body["detail"]
        assert counts() == before
    finally:
        api.stop()


@pytest.mark.parametrize("shuffle", [False, "batch"])
def test_shuffle_modes_follow_keras(client, shuffle, tmp_path):
    """shuffle=False and shuffle="batch" train as model.fit does with the same seed and arguments."""
    arrays = seed_arrays()
    dataset = upload(client, "seed.npz", npz_bytes(**arrays)).json()
    model = client.post("/v1/models", json=SEED_MODEL).json()
    job = wait_for_job(client, client.post("/v1/jobs", json=fit_request(model["id"], dataset["id"], epochs=2,
                                                                       shuffle=shuffle)).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    with seeded(7):
        local = local_model(client, model["id"])
        compile_locally(local)
        history = local.fit(arrays["train_x"], arrays["train_y"], epochs=2, batch_size=100, verbose=0, shuffle=shuffle,
                            validation_data=(arrays["val_x"], arrays["val_y"])).history
    assert_history_equal(job["history"], history)
    assert_weights_equal(trained_model(client, job["id"], tmp_path).get_weights(), local.get_weights())
