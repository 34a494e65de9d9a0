"""Whole-training-state checkpoints every N epochs, so a later attempt resumes where a lost one stopped.

The state is a `.keras` file (architecture, weights, optimizer variables and compile config, which
includes Keras's seed-generator state for dropout and the like) plus Python's and NumPy's random states.
The write is fenced like every other write of the attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from workers import keras_speed


def rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]}


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the training state after every `every` epochs, and after the last one before a stop."""

    def __init__(self, *, every: int, workdir: Path, store: Callable[[int, Path, dict[str, Any]], None]) -> None:
        super().__init__()
        self._every = every
        self._path = workdir / "resume.keras"
        self._store = store
        keras_speed.prime_saving_caches()  # a save every epoch: Keras's own cache of what to skip, working

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # A stopping model (cancel, time limit) checkpoints whatever the period: that state is kept.
        if (epoch + 1) % self._every == 0 or self.model.stop_training:
            self.model.save(self._path)
            self._store(epoch, self._path, rng_state())
