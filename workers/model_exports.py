"""An export job (a registered model version in a serving format), proven: Keras's own `model.export` writes the
format, the format's own runtime loads what was written, and its predictions of the sample are compared with
Keras's `predict`, output by output (DESIGN.md §16)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.core.contract import ExportArguments


def _by_output(value: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Predictions by output name, whatever structure they came in (one array, a list, a dict)."""
    if isinstance(value, dict):
        return {str(name): np.asarray(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return {name: np.asarray(item) for name, item in zip(names, value, strict=True)}
    return {names[0]: np.asarray(value)}


def _rows(x: Any, limit: int) -> Any:
    if isinstance(x, dict):
        return {name: np.asarray(value[:limit]) for name, value in x.items()}
    if isinstance(x, list | tuple):
        return [np.asarray(value[:limit]) for value in x]
    return np.asarray(x[:limit])


def _saved_model_predictions(directory: Path, sample: Any) -> Any:
    """What TensorFlow's own SavedModel loader computes for the sample, through the `serve` endpoint Keras wrote."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    found = loaded.serve(sample)
    return tf.nest.map_structure(lambda tensor: tensor.numpy(), found)


def export_and_verify(model: keras.Model, x: Any, arguments: ExportArguments, workdir: Path,
                      output_names: list[str]) -> tuple[dict[str, Any], list[tuple[str, Path, str]]]:
    """(the job's result: `export` with the format, `verified` or `mismatch`, the largest absolute difference per
    output and the tolerance; the artifact: the export zipped as `<name>/<version>/...`)."""
    if importlib.util.find_spec("tensorflow") is None:
        # Keras writes a SavedModel through TensorFlow on any backend, and only TensorFlow's loader can prove it.
        raise RuntimeError(f"a {arguments.format} export needs TensorFlow on the worker, and this one runs Keras on "
                           f"{keras.backend.backend()} without it: run exports on a worker with TensorFlow "
                           "installed (kerasd[cpu] or kerasd[gpu])")
    sample = _rows(x, arguments.max_rows)
    expected = _by_output(model.predict(sample, verbose=0), output_names)
    root = workdir / "export"
    target = root / arguments.directory
    model.export(str(target), format=arguments.format, verbose=False)
    got = _by_output(_saved_model_predictions(target, sample), output_names)
    differences = {name: float(np.max(np.abs(got[name].astype("float64") - expected[name].astype("float64"))))
                   for name in expected}
    verified = all(difference <= arguments.tolerance for difference in differences.values())
    archive = Path(shutil.make_archive(str(workdir / "savedmodel"), "zip", root))
    rows = len(next(iter(expected.values())))
    result = {"export": {"format": arguments.format, "status": "verified" if verified else "mismatch",
                         "max_abs_diff": differences, "tolerance": arguments.tolerance, "rows": rows,
                         "directory": arguments.directory, "runtime": "tensorflow.saved_model.load"}}
    return result, [("savedmodel.zip", archive, "application/zip")]
