"""Plain Keras in the test process, run exactly as the worker runs a job, to compare results with."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np


@contextmanager
def seeded(seed: int):
    import keras

    from app.specchecker import compat

    keras.utils.set_random_seed(seed)
    compat.set_op_determinism(True)
    try:
        yield
    finally:
        compat.set_op_determinism(False)


def local_model(client: httpx.Client, model_id: str):
    """The model as the service built it, from its canonical Keras JSON."""
    import keras

    return keras.models.model_from_json(client.get(f"/v1/models/{model_id}/architecture").text)


def trained_model(client: httpx.Client, job_id: str, tmp_path: Path):
    """A job's trained model, from its architecture.json and weights.h5 artifacts."""
    import keras

    model = keras.models.model_from_json(client.get(f"/v1/jobs/{job_id}/artifacts/architecture.json").text)
    path = tmp_path / f"{job_id}.weights.h5"
    path.write_bytes(client.get(f"/v1/jobs/{job_id}/artifacts/weights.h5").content)
    model.load_weights(path)
    return model


def fit_on_seed(model: Any, data: dict[str, np.ndarray], **fit: Any) -> dict[str, list[Any]]:
    """`model.fit` on the seed's training rows as `tests.seed.fit_request` asks a job to (batch 100, validated on the
    seed's validation rows unless `fit` says otherwise), quietly: its `History.history`."""
    options = {"batch_size": 100, "verbose": 0, "validation_data": (data["val_x"], data["val_y"]), **fit}
    return model.fit(data["train_x"], data["train_y"], **options).history


def load_npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


def assert_weights_equal(a: list[np.ndarray], b: list[np.ndarray], atol: float = 1e-6) -> None:
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_allclose(left, right, atol=atol, rtol=1e-5)


def assert_history_equal(service: dict[str, list[Any]], local: dict[str, list[Any]]) -> None:
    assert set(service) == set(local), (service.keys(), local.keys())
    for key in local:
        np.testing.assert_allclose(service[key], local[key], rtol=1e-5, atol=1e-6, err_msg=key)
