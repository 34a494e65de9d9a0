"""The Keras work of a fit job, as plain functions: build, compile, fit, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from workers.building import build_model, compile_arguments


def fit_model(*, keras_config: dict[str, Any], compile_spec: dict[str, Any], fit_spec: dict[str, Any],
              arrays: dict[str, np.ndarray], callbacks: list[keras.callbacks.Callback],
              seed: int | None) -> tuple[keras.Model, dict[str, list[float]]]:
    """`model.compile(...)` then `model.fit(...)` exactly as the user asked, with arrays by role."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = build_model(keras_config)
    model.compile(**compile_arguments(compile_spec))
    validation = None
    if "fit.validation_data.x" in arrays:
        validation = (arrays["fit.validation_data.x"], arrays["fit.validation_data.y"])
    history = model.fit(
        arrays["fit.x"], arrays.get("fit.y"),
        epochs=fit_spec["epochs"], batch_size=fit_spec.get("batch_size"),
        validation_data=validation, validation_split=fit_spec.get("validation_split", 0.0),
        shuffle=fit_spec.get("shuffle", True), callbacks=callbacks, verbose=0,
    )
    return model, {key: [float(v) for v in values] for key, values in history.history.items()}


def export_artifacts(model: keras.Model, directory: Path) -> list[tuple[str, Path, str]]:
    """The files a client takes back: (artifact name, file, media type)."""
    weights = directory / "model.weights.h5"  # Keras 3 insists on this suffix
    model.save_weights(weights)
    architecture = directory / "architecture.json"
    architecture.write_text(json.dumps(json.loads(model.to_json())))
    return [("weights.h5", weights, "application/x-hdf5"),
            ("architecture.json", architecture, "application/json")]
