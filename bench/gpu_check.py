"""Runs the seed's §3.2 example and a small CNN through a running kerasd whose worker has a GPU, and
prints the device the worker reports and the rows/s of each fit. Used by bench/gpu_check.sh."""

from __future__ import annotations

import io
import sys
import time
from datetime import datetime

import httpx
import numpy as np


def upload(client: httpx.Client, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return client.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())}).raise_for_status().json()["id"]


def fit(client: httpx.Client, spec: dict, dataset: str, rows: int, epochs: int, batch: int, loss: str) -> float:
    model = client.post("/v1/models", json=spec).raise_for_status().json()["id"]
    job = client.post("/v1/jobs", json={
        "model_id": model, "resources": {"gpus": 1}, "artifacts": ["weights.h5"],
        "compile": {"optimizer": "adam", "loss": loss, "metrics": ["accuracy"]},
        "fit": {"x": {"dataset_id": dataset, "array": "x"}, "y": {"dataset_id": dataset, "array": "y"},
                "epochs": epochs, "batch_size": batch}}).raise_for_status().json()["id"]
    while (status := client.get(f"/v1/jobs/{job}").json())["status"] in ("queued", "running"):
        time.sleep(0.2)
    if status["status"] != "succeeded":
        raise SystemExit(f"job {job} {status['status']}: {status['error']}")
    # From the worker's start to its end: model build, data reading, fit and exports included.
    seconds = (datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["started_at"]))
    return rows * epochs / max(seconds.total_seconds(), 1e-9)


def main(base_url: str) -> None:
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=base_url, timeout=600) as client:
        workers = client.get("/version").json()["workers"]
        print("workers:", [(w["name"], w.get("backend"), w.get("gpus")) for w in workers])
        x = rng.random((1000, 72), dtype="float32")
        y = np.eye(10, dtype="float32")[rng.integers(0, 10, 1000)]
        seed = {"type": "sequential", "input_shape": [72], "layers": [
            {"class_name": "Dense", "units": 32, "activation": "relu"},
            {"class_name": "Dense", "units": 32, "activation": "relu"},
            {"class_name": "Dense", "units": 10, "activation": "softmax"}]}
        rate = fit(client, seed, upload(client, x=x, y=y), 1000, 10, 100, "categorical_crossentropy")
        print(f"seed §3.2 MLP: {rate:,.0f} rows/s")
        images = rng.random((20_000, 28, 28, 1), dtype="float32")
        labels = rng.integers(0, 10, 20_000)
        cnn = {"type": "sequential", "input_shape": [28, 28, 1], "layers": [
            {"class_name": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
            {"class_name": "MaxPooling2D", "pool_size": 2},
            {"class_name": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"},
            {"class_name": "Flatten"},
            {"class_name": "Dense", "units": 10, "activation": "softmax"}]}
        rate = fit(client, cnn, upload(client, x=images, y=labels), 20_000, 3, 128, "sparse_categorical_crossentropy")
        print(f"small CNN: {rate:,.0f} rows/s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
