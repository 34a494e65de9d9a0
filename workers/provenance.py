"""What trained a job, recorded in its result as `trained_with`: the versions of kerasd, Keras, the backend and
its framework, Python, and the worker that ran it. A registered model version copies it into its lineage."""

from __future__ import annotations

import functools
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import keras

import app
from app.specchecker.building import versions

# The framework package behind each Keras backend, whose version the backend's numbers depend on.
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@functools.cache
def _software() -> dict[str, Any]:
    found = versions()  # keras, backend, tensorflow (None where absent): what the worker announces too
    backend = keras.backend.backend()
    return {"kerasd": app.__version__, "keras": found["keras"], "backend": backend,
            # TensorFlow's distribution may be tensorflow-cpu (the cpu extra): its module knows its version.
            "backend_version": found.get("tensorflow") if backend == "tensorflow"
            else _package_version(BACKEND_PACKAGES.get(backend, backend)),
            "tensorflow": found.get("tensorflow"), "numpy": _package_version("numpy"),
            "python": platform.python_version(), "device": _device(backend)}


def _device(backend: str) -> str:
    """The device the backend trains on, as `gpu: <name>` or `cpu` (the first one: a worker trains on one, or on
    several of one kind under a distribution strategy)."""
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            return "cpu" if device.platform == "cpu" else f"{device.platform}: {device.device_kind}"
        if backend == "torch":
            import torch

            return f"gpu: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return "cpu"
        return f"gpu: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', gpus[0].name)}"
    except Exception as exc:  # a backend that cannot say: the record says so rather than failing the job
        return f"unknown ({type(exc).__name__})"


def trained_with(worker: str) -> dict[str, Any]:
    """The versions this worker process trains with, and its name (host:pid, as in the job's `started` event)."""
    return {**_software(), "worker": worker}
