"""SDK `datasets.upload(path)` of a .npz (and .npy) file on disk: the API stores those very bytes (its sha256
is the file's), lists each array's name, shape and dtype, gives the arrays back, and a fit job can use them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import kerasd
from tests.seed import SEED_MODEL, fit_request, seed_arrays, wait_for_job


@pytest.fixture()
def sdk(api_url: str):
    with kerasd.Client(api_url, verbose=0) as client:
        yield client


def test_upload_an_npz_file_then_use_it(api_url, sdk, client, tmp_path) -> None:
    arrays = seed_arrays(11)
    path = tmp_path / "seed-11.npz"
    np.savez(path, **arrays)
    file_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    dataset = sdk.datasets.upload(path)
    assert dataset["sha256"] == file_sha256
    assert dataset["format"] == "npz"
    expected = sorted(({"name": name, "shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()),
                      key=lambda a: a["name"])
    assert sorted(dataset["arrays"], key=lambda a: a["name"]) == expected

    # What the API reports on its own, to a client that is not the SDK.
    reported = client.get(f"/v1/datasets/{dataset['id']}").json()
    assert reported["sha256"] == file_sha256
    assert sorted(reported["arrays"], key=lambda a: a["name"]) == expected
    assert client.get(f"/v1/datasets/{dataset['id']}/content").content == path.read_bytes()
    back = sdk.datasets.download(dataset["id"])
    assert set(back) == set(arrays) and all(np.array_equal(back[k], arrays[k]) for k in arrays)

    # The same file again (a str path this time, a fresh client) is the same dataset, not a second one.
    with kerasd.Client(api_url, verbose=0) as fresh:
        before = fresh.datasets.list(limit=1).total
        assert fresh.datasets.upload(str(path))["id"] == dataset["id"]
        assert fresh.datasets.list(limit=1).total == before

    # Usable: a fit job reads its arrays.
    model = client.post("/v1/models", json=SEED_MODEL).json()
    created = client.post("/v1/jobs", json=fit_request(model["id"], dataset["id"], epochs=1))
    assert created.status_code == 201, created.text
    job = wait_for_job(client, created.json()["id"], timeout_s=180)
    assert job["status"] == "succeeded", job.get("error")
    assert len(job["history"]["loss"]) == 1


def test_upload_an_npy_file_and_refuse_other_suffixes(sdk, client, tmp_path) -> None:
    array = np.arange(24, dtype="int32").reshape(6, 4)
    path = tmp_path / "counts.npy"
    np.save(path, array)
    dataset = sdk.datasets.upload(path)
    assert dataset["format"] == "npy" and dataset["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(a["shape"], a["dtype"]) for a in dataset["arrays"]] == [([6, 4], "int32")]
    assert np.array_equal(sdk.datasets.download(dataset["id"]), array)

    text = tmp_path / "counts.csv"
    text.write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"neither \.npy nor \.npz"):
        sdk.datasets.upload(text)

