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
            "backend_version": _package_version(BACKEND_PACKAGES.get(backend, backend)),
            "tensorflow": found.get("tensorflow"), "numpy": _package_version("numpy"),
            "python": platform.python_version()}


def trained_with(worker: str) -> dict[str, Any]:
    """The versions this worker process trains with, and its name (host:pid, as in the job's `started` event)."""
    return {**_software(), "worker": worker}
