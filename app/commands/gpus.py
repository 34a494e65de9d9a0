"""Which GPUs this machine has, without importing TensorFlow or JAX (the worker's parent stays light)."""

from __future__ import annotations

import os
import shutil
import subprocess


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else what `nvidia-smi -L` lists."""
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        return [gpu.strip() for gpu in pinned.split(",") if gpu.strip() and gpu.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (subprocess.SubprocessError, OSError):
        return []
    return [str(i) for i, line in enumerate(listing.stdout.splitlines()) if line.startswith("GPU ")]


def choose(spec: str) -> list[str]:
    """`--gpus`: 'auto' (all visible, or none), 'all', 'none', or ids like '0,2'."""
    if spec == "none":
        return []
    if spec in ("auto", "all"):
        found = visible_gpus()
        if spec == "all" and not found:
            raise SystemExit("kerasd worker --gpus all: no GPU is visible (nvidia-smi finds none)")
        return found
    return [gpu.strip() for gpu in spec.split(",") if gpu.strip()]


def groups(gpus: list[str], per_worker: int) -> list[list[str]]:
    """One worker process per `per_worker` GPUs (the last group may be smaller)."""
    return [gpus[i:i + per_worker] for i in range(0, len(gpus), per_worker)]
