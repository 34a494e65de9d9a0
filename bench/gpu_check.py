"""Runs the tutorial's §3.2 job and a small CNN through a running kerasd (bench/gpu_check.sh starts one per
backend) and the same fits as plain Keras `model.fit` in a child process on the same backend and device, and
prints the device each trained on, rows/s of each, the worker's peak GPU memory (nvidia-smi, sampled while its jobs
ran) and its peak resident memory. One run each: figures, not a verdict. With --gpus 0 (CPU=1 bench/gpu_check.sh)
the same runs on the CPU, and the lines say that no GPU was used.

    python -m bench.gpu_check URL [--gpus 1]     (the stack's backend is its default_backend)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._child import child_json

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


def peak_rss_mib(pid: int | None) -> str:
    """The process's peak resident memory since it started (Linux's VmHWM), or why it is not known."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return "not known (no such local process)"
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return f"{int(found.group(1)) / 1024:,.0f} MiB" if found else "not known (no VmHWM)"


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

    def describe(self, gpus: int) -> str:
        if gpus == 0:
            return "none (a CPU run: the jobs asked for no GPU)"
        if self.peak_mib is not None:
            return f"{self.peak_mib:,} MiB"
        if self.pid is None:
            return "not measured (the worker's pid is not in /version)"
        if not shutil.which("nvidia-smi"):
            return "not measured (no nvidia-smi)"
        return f"not seen (nvidia-smi never listed the worker, pid {self.pid}, on a GPU)"

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


def device_of_plain_fit(backend: str) -> str:
    """Where Keras on `backend` places its tensors in this process (as workers/provenance.py says it for a job)."""
    if backend == "torch":
        import torch

        return f"gpu: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else f"gpu: {device.device_kind}"
    import tensorflow as tf

    return f"gpu: {tf.config.list_physical_devices('GPU')[0].name}" if tf.config.list_physical_devices("GPU") else "cpu"


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
    print(json.dumps({"rows_per_s": len(x) * epochs / seconds, "device": device_of_plain_fit(keras.backend.backend())}))


def plain_fit(name: str, backend: str) -> dict[str, Any]:
    return child_json(
        [sys.executable, "-m", "bench.gpu_check", "--plain", name],
        {**os.environ, "KERAS_BACKEND": backend, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
        f"plain fit of {name} on {backend}",
        timeout_s=1800,
    )


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
        if args.gpus == 0:
            print("a CPU run (--gpus 0): no GPU is used and no GPU memory is measured", flush=True)
        for name in CASES:
            with GpuMemory(pid) as memory:
                served, result = kerasd_fit(client, name, args.gpus)
            plain = plain_fit(name, backend)
            trained, tuning = result["trained_with"], result.get("tuning", {})
            print(
                f"{backend} {name}: kerasd {served:,.0f} rows/s, plain fit {plain['rows_per_s']:,.0f} rows/s "
                f"(ratio {served / plain['rows_per_s']:.2f}); worker device {trained.get('device')}, plain fit "
                f"device {plain['device']}; {trained.get('backend')} {trained.get('backend_version')}; worker peak "
                f"GPU memory {memory.describe(args.gpus)}, peak resident memory {peak_rss_mib(pid)}; "
                f"tuning steps_per_execution={tuning.get('steps_per_execution')}, {tuning.get('notes')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
