"""Uploaded `.weights.h5` files: an honest one is stored, and every file that is not plain HDF5 or that
reaches outside itself (links, external storage, virtual datasets: the CVE-2026-1669 class) is a 422 that
stores nothing. The check runs h5py in the API process, so these files are sent to the real API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import model_files
from tests.test_bad_input import assert_problem


def stored() -> dict[str, int]:
    """Rows of weights files, blobs and blob chunks in SQL, where uploaded bytes are kept."""
    from sqlalchemy import func, select

    from app.core.database import get_sessionmaker
    from app.core.tables import Blob, BlobChunk, WeightsFile

    with get_sessionmaker()() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table))
                for table in (Blob, BlobChunk, WeightsFile)}


def weights_bytes(tmp_path: Path, change: Callable[[Any], None] | None = None) -> bytes:
    """What model.save_weights writes for the tutorial's small model, then changed by `change(h5file)`."""
    import h5py

    path = tmp_path / "model.weights.h5"
    model_files.small_model().save_weights(path)
    if change is not None:
        with h5py.File(path, "a") as h5:
            change(h5)
    return path.read_bytes()


def post_weights(client, data: bytes, name: str = "model.weights.h5"):
    return client.post("/v1/weights", files={"file": (name, data)})


def test_plain_weights_are_stored(client, tmp_path):
    data = weights_bytes(tmp_path)
    before = stored()
    response = post_weights(client, data)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["size_bytes"] == len(data)
    assert client.get(f"/v1/weights/{created['id']}").json() == created
    after = stored()
    assert after["weights_files"] == before["weights_files"] + 1


def hostile_files(tmp_path: Path) -> dict[str, tuple[bytes, str, str]]:
    """name: (file, the problem's title, a phrase of its detail)."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"the server's private bytes " * 10)
    source = tmp_path / "source.h5"
    import h5py
    import numpy as np

    with h5py.File(source, "w") as h5:
        h5["data"] = np.arange(10, dtype="float32")
    honest = weights_bytes(tmp_path)
    return {
        "not HDF5": (b"PK\x03\x04 a zip, not weights" * 8, "Invalid Weights File", "not HDF5"),
        "HDF5 signature, then garbage": (honest[:8] + b"\x00" * 2000, "Invalid Weights File", "cannot be read"),
        "soft link": (weights_bytes(tmp_path, model_files.soft_link), "Unsafe Weights File",
                      "layers/alias is a link"),
        "external link": (weights_bytes(tmp_path, model_files.external_link(secret)), "Unsafe Weights File",
                          "layers/leak is a link"),
        "external storage": (weights_bytes(tmp_path, model_files.external_storage(secret)), "Unsafe Weights File",
                             "layers/dense/vars/leak reads data from outside the file"),
        "virtual dataset": (weights_bytes(tmp_path, model_files.virtual_dataset(source)), "Unsafe Weights File",
                            "layers/virtual reads data from outside the file"),
    }


@pytest.mark.parametrize("kind", ["not HDF5", "HDF5 signature, then garbage", "soft link", "external link",
                                  "external storage", "virtual dataset"])
def test_a_hostile_weights_file_is_422_and_stores_nothing(client, tmp_path, kind):
    data, title, phrase = hostile_files(tmp_path)[kind]
    before = stored()
    body = assert_problem(post_weights(client, data), 422, phrase)
    assert body["title"] == title
    if title == "Unsafe Weights File":
        assert "model.save_weights" in body["detail"]
    assert stored() == before


def test_a_weights_file_not_named_weights_h5_is_422(client, tmp_path):
    before = stored()
    assert_problem(post_weights(client, weights_bytes(tmp_path), name="model.h5"), 422, "*.weights.h5")
    assert stored() == before
