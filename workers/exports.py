"""The files a client takes back from a job: weights, whole models, architectures, history, predictions."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np
import yaml

from workers import keras_speed


def _history_csv(epochs: list[tuple[int, dict[str, float]]], path: Path) -> None:
    """One row per epoch, as CSVLogger writes it; a metric an epoch did not compute (val_* between
    validation_freq epochs) is left empty."""
    keys = sorted({key for _, logs in epochs for key in logs})
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["epoch", *keys])
        for epoch, logs in epochs:
            writer.writerow([epoch, *(logs.get(k, "") for k in keys)])


def export_model(model: keras.Model, names: list[str], workdir: Path,
                 epochs: list[tuple[int, dict[str, float]]]) -> list[tuple[str, Path, str]]:
    """(artifact name, file, media type) for each requested artifact."""
    keras_speed.prime_saving_caches()
    files: list[tuple[str, Path, str]] = []
    architecture = json.loads(model.to_json())
    for name in names:
        if name == "weights.h5":
            path = workdir / "model.weights.h5"  # Keras 3 insists on this suffix
            model.save_weights(path)
            files.append((name, path, "application/x-hdf5"))
        elif name == "model.keras":
            path = workdir / "model.keras"
            model.save(path)
            files.append((name, path, "application/zip"))
        elif name == "model.h5":
            path = workdir / "model.h5"
            model.save(path)  # Keras's legacy HDF5 format, for tools that still read it (tutorial §5.3)
            files.append((name, path, "application/x-hdf5"))
        elif name == "architecture.json":
            path = workdir / "architecture.json"
            path.write_text(json.dumps(architecture))
            files.append((name, path, "application/json"))
        elif name == "architecture.yaml":
            path = workdir / "architecture.yaml"
            path.write_text(yaml.safe_dump(architecture, sort_keys=False))
            files.append((name, path, "application/yaml"))
        elif name == "history.csv" and epochs:
            path = workdir / "history.csv"
            _history_csv(epochs, path)
            files.append((name, path, "text/csv"))
        elif name == "savedmodel.zip":
            export_dir = workdir / "savedmodel"
            model.export(str(export_dir), format="tf_saved_model")
            archive = shutil.make_archive(str(workdir / "savedmodel"), "zip", root_dir=export_dir)
            files.append((name, Path(archive), "application/zip"))
    return files


INLINE_PREDICTIONS_LIMIT = 10_000


def export_predictions(predictions: Any, output_names: list[str], workdir: Path) -> tuple[list, Any]:
    """predictions.npy (one output) or predictions.npz (by output name); small ones also inline."""
    if isinstance(predictions, dict | list | tuple) and not isinstance(predictions, np.ndarray):
        named = predictions if isinstance(predictions, dict) else dict(zip(output_names, predictions, strict=True))
        path = workdir / "predictions.npz"
        np.savez(path, **{name: np.asarray(value) for name, value in named.items()})
        size = sum(np.asarray(v).size for v in named.values())
        inline = {k: np.asarray(v).tolist() for k, v in named.items()} if size <= INLINE_PREDICTIONS_LIMIT else None
        return [("predictions.npz", path, "application/zip")], inline
    array = np.asarray(predictions)
    path = workdir / "predictions.npy"
    np.save(path, array)
    inline = array.tolist() if array.size <= INLINE_PREDICTIONS_LIMIT else None
    return [("predictions.npy", path, "application/octet-stream")], inline
