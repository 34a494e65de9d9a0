"""Runs the tutorial's §3.2 job and a small CNN through a running kerasd (bench/gpu_check.sh starts one per
backend) and the same fits as plain Keras `model.fit` in a child process on the same backend and device, and
prints the device the worker trained on, rows/s of each, and the worker's peak GPU memory (nvidia-smi, sampled
while its jobs ran). One run each: figures, not a verdict.

    python -m bench.gpu_check URL [--gpus 1]     (the stack's backend is its default_backend)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import numpy as np

# The tutorial's §3.2 model (tests/seed.py's, with Keras's own activation names, which plain_child passes to Keras).
MLP = {
    "type": "sequential",
    "input_shape": [72],
    "layers": [
        {"class_name": "Dense", "units": units, "activation": activation}
        for units, activation in ((32, "relu"), (32, "relu"), (10, "softmax"))
    ],
}
CNN = {
    "type": "sequential",
    "input_shape": [28, 28, 1],
    "layers": [
        {"class_name": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
        {"class_name": "MaxPooling2D", "pool_size": 2},
        {"class_name": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"},
        {"class_name": "Flatten"},
        {"class_name": "Dense", "units": 10, "activation": "softmax"},
    ],
}
# name: (spec, rows, shape, epochs, batch size, loss)
CASES = {
    "seed §3.2 MLP": (MLP, 1000, (72,), 10, 100, "categorical_crossentropy"),
    "small CNN": (CNN, 20_000, (28, 28, 1), 3, 128, "sparse_categorical_crossentropy"),
}


def arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    _spec, rows, shape, _epochs, _batch, loss = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.random((rows, *shape), dtype="float32")
    labels = rng.integers(0, 10, rows)
    return x, (labels if loss.startswith("sparse") else np.eye(10, dtype="float32")[labels])


def upload(client: httpx.Client, **data: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **data)
    return client.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())}).raise_for_status().json()["id"]


class GpuMemory:
    """The largest GPU memory nvidia-smi reports for `pid`, sampled every 0.2 s (None without nvidia-smi)."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak_mib = pid, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
            except (OSError, subprocess.SubprocessError):
                return
            for line in out.splitlines():
                pid, _, used = line.partition(",")
                if pid.strip() == str(self.pid) and used.strip().isdigit():
                    self.peak_mib = max(self.peak_mib or 0, int(used))

    def __enter__(self) -> GpuMemory:
        if self.pid is not None and shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()


def kerasd_fit(client: httpx.Client, name: str, gpus: int) -> tuple[float, dict[str, Any]]:
    spec, _rows, _shape, epochs, batch, loss = CASES[name]
    x, y = arrays(name)
    dataset = upload(client, x=x, y=y)
    model = client.post("/v1/models", json=spec).raise_for_status().json()["id"]
    created = client.post(
        "/v1/jobs",
        json={
            "model_id": model,
            "resources": {"gpus": gpus},
            "artifacts": ["weights.h5"],
            "seed": 1,
            "compile": {"optimizer": "adam", "loss": loss, "metrics": ["accuracy"]},
            "fit": {
                "x": {"dataset_id": dataset, "array": "x"},
                "y": {"dataset_id": dataset, "array": "y"},
                "epochs": epochs,
                "batch_size": batch,
            },
        },
    )
    if created.status_code != 201:
        raise SystemExit(f"{name}: {created.status_code} {created.text}")
    job = created.json()["id"]
    while (status := client.get(f"/v1/jobs/{job}").json())["status"] in ("queued", "running"):
        time.sleep(0.2)
    if status["status"] != "succeeded":
        raise SystemExit(f"job {job} {status['status']}: {status['error']}")
    # From the worker's start to its end: model build, data reading, fit and exports included.
    seconds = datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["started_at"])
    return len(x) * epochs / max(seconds.total_seconds(), 1e-9), status["result"]


def plain_child(name: str) -> None:
    """In a child with KERAS_BACKEND set: a warm-up fit, then the timed one; prints JSON."""
    import keras

    spec, _rows, _shape, epochs, batch, loss = CASES[name]
    x, y = arrays(name)

    def fit(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
        started = time.perf_counter()
        layers = [keras.Input(tuple(spec["input_shape"]))]
        layers += [
            getattr(keras.layers, layer["class_name"])(**{k: v for k, v in layer.items() if k != "class_name"})
            for layer in spec["layers"]
        ]
        model = keras.Sequential(layers)
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
        return time.perf_counter() - started

    fit(x[:512], y[:512], 1)
    seconds = fit(x, y, epochs)
    print(json.dumps({"rows_per_s": len(x) * epochs / seconds}))


def plain_fit(name: str, backend: str) -> float:
    found = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--plain", name],
        env={**os.environ, "KERAS_BACKEND": backend, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if found.returncode != 0:
        raise SystemExit(f"plain fit of {name} on {backend} failed:\n{found.stderr[-3000:]}")
    return json.loads(found.stdout.strip().splitlines()[-1])["rows_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs each job asks for (0 for a CPU-only check)")
    parser.add_argument("--plain", default=None, help=argparse.SUPPRESS)  # the child of plain_fit
    args = parser.parse_args()
    if args.plain:
        plain_child(args.plain)
        return
    with httpx.Client(base_url=args.url, timeout=600) as client:
        version = client.get("/version").json()
        backend = version["default_backend"]
        workers = [w for w in version["workers"] if w.get("backend") == backend]
        print(f"backend {backend}; workers: {[(w.get('name'), w.get('gpus')) for w in workers]}", flush=True)
        pid = workers[0].get("pid") if workers else None
        for name in CASES:
            with GpuMemory(pid) as memory:
                served, result = kerasd_fit(client, name, args.gpus)
            plain = plain_fit(name, backend)
            trained, tuning = result["trained_with"], result.get("tuning", {})
            peak = f"{memory.peak_mib} MiB" if memory.peak_mib is not None else "not measured (no nvidia-smi)"
            print(
                f"{backend} {name}: kerasd {served:,.0f} rows/s, plain fit {plain:,.0f} rows/s "
                f"(ratio {served / plain:.2f}); worker device {trained.get('device')}; "
                f"{trained.get('backend')} {trained.get('backend_version')}; worker peak GPU memory {peak}; "
                f"tuning steps_per_execution={tuning.get('steps_per_execution')}, {tuning.get('notes')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
