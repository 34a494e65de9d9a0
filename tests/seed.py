"""The seed tutorial's §3.2 example, sent over HTTP, shared by the tests of every way to run kerasd."""

from __future__ import annotations

import copy
import io
import json
import time
from typing import Any

import httpx
import numpy as np

from app.system.api_docs import MODEL_EXAMPLES

# Dense 32 relu, 32 tf.nn.relu, 10 tf.nn.softmax on 72 features: the tutorial's model as the API documents it.
SEED_MODEL = copy.deepcopy(MODEL_EXAMPLES["tutorial_2_1"]["value"])
SEED_COMPILE = {
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
    "loss": "categorical_crossentropy",
    "metrics": ["categorical_accuracy"],
}


def seed_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """`np.random.random((1000, 72))` and 10-class one-hot targets, plus 200 validation rows."""
    rng = np.random.default_rng(seed)

    def one_hot(rows: int) -> np.ndarray:
        return np.eye(10, dtype="float32")[rng.integers(0, 10, rows)]

    return {
        "train_x": rng.random((1000, 72), dtype="float32"),
        "train_y": one_hot(1000),
        "val_x": rng.random((200, 72), dtype="float32"),
        "val_y": one_hot(200),
    }


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def upload(client: httpx.Client, filename: str, content: bytes) -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (filename, content, "application/octet-stream")})


def ref(dataset_id: str, array: str | None = None) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "array": array} if array else {"dataset_id": dataset_id}


def fit_request(model_id: str, dataset_id: str, **fit: Any) -> dict[str, Any]:
    return {
        "kind": "fit",
        "model_id": model_id,
        "compile": copy.deepcopy(SEED_COMPILE),
        "seed": 7,
        "fit": {
            "x": ref(dataset_id, "train_x"),
            "y": ref(dataset_id, "train_y"),
            "epochs": 10,
            "batch_size": 100,
            "validation_data": {"x": ref(dataset_id, "val_x"), "y": ref(dataset_id, "val_y")},
            **fit,
        },
    }


def read_events(
    client: httpx.Client, job_id: str, *, timeout_s: float = 300, last_event_id: str | None = None
) -> list[dict[str, Any]]:
    """All events of a job's SSE stream, until the server ends it after the terminal event."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout_s) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[len("data: ") :]))
            assert time.monotonic() < deadline, "the event stream did not end in time"
    return found


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def submit(client: httpx.Client, request: dict[str, Any]) -> str:
    """Submit a job, which the API must accept: its id."""
    created = client.post("/v1/jobs", json=request)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def run(client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    """Submit a job and wait for it; the job must succeed."""
    job = wait_for_job(client, submit(client, request))
    assert job["status"] == "succeeded", job["error"]
    return job


def upload_seed(api_url: str, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """The seed's arrays as a dataset and the seed's model, for a test module: {"dataset": id, "model": id}."""
    with httpx.Client(base_url=api_url, timeout=120) as http:
        dataset = upload(http, "seed.npz", npz_bytes(**arrays)).json()
        model = http.post("/v1/models", json=SEED_MODEL).json()
    return {"dataset": dataset["id"], "model": model["id"]}
