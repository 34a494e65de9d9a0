"""The worker's export and its proof (workers/model_exports.py) on each kind of model the tutorial and users train:
Keras writes a SavedModel, TensorFlow's own loader runs it, and its predictions are Keras's within 1e-5 (the
registry's export jobs run exactly this; tests/test_registry.py runs one through the API and a worker)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

RNG = np.random.default_rng(0)


def _sequential() -> tuple[Any, Any]:
    import keras

    return (keras.Sequential([keras.Input((72,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")]), RNG.random((30, 72), dtype="float32"))


def _two_inputs_two_outputs() -> tuple[Any, Any]:
    import keras

    a, b = keras.Input((8,), name="a"), keras.Input((4,), name="b")
    joined = keras.layers.concatenate([keras.layers.Dense(8, activation="relu")(a), b])
    model = keras.Model([a, b], [keras.layers.Dense(1, name="score")(joined),
                                 keras.layers.Dense(3, activation="softmax", name="label")(joined)])
    return model, [RNG.random((30, 8), dtype="float32"), RNG.random((30, 4), dtype="float32")]


def _plugin_layer_and_model() -> tuple[Any, Any]:
    import keras

    from kerasd_plugins.seed import MyLayer, MyModel

    inputs = keras.Input((72,))
    model = keras.Model(inputs, MyModel(num_classes=10)(MyLayer(16)(inputs)))
    return model, RNG.random((30, 72), dtype="float32")


def _cnn() -> tuple[Any, Any]:
    import keras

    return (keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(5)]),
            RNG.random((30, 16, 16, 3), dtype="float32"))


def _lstm() -> tuple[Any, Any]:
    import keras

    return (keras.Sequential([keras.Input((10, 6)), keras.layers.LSTM(8), keras.layers.Dense(2)]),
            RNG.random((30, 10, 6), dtype="float32"))


def _embedding() -> tuple[Any, Any]:
    import keras

    return (keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(50, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)]),
            RNG.integers(0, 50, (30, 12)).astype("int32"))


@pytest.mark.parametrize("build", [_sequential, _two_inputs_two_outputs, _plugin_layer_and_model, _cnn, _lstm,
                                   _embedding], ids=lambda build: build.__name__.strip("_"))
def test_a_saved_model_export_predicts_what_keras_predicts(build: Callable[[], tuple[Any, Any]], tmp_path: Path):
    from app.core.contract import ExportArguments
    from workers.model_exports import export_and_verify
    from workers.training import output_names

    model, sample = build()
    names = output_names(model)
    result, [(artifact, archive, media_type)] = export_and_verify(
        model, sample, ExportArguments(format="tf_saved_model", directory="kind/1"), tmp_path, names)
    report = result["export"]
    assert report["status"] == "verified", report
    assert set(report["max_abs_diff"]) == set(names) and max(report["max_abs_diff"].values()) <= 1e-5
    assert report["rows"] == 30 and (artifact, media_type) == ("savedmodel.zip", "application/zip")
    assert "kind/1/saved_model.pb" in zipfile.ZipFile(archive).namelist()


def test_a_difference_past_the_tolerance_is_a_mismatch_with_its_figures(tmp_path: Path, monkeypatch):
    from app.core.contract import ExportArguments
    from workers import model_exports

    model, sample = _sequential()
    # TensorFlow's loader (outside kerasd) made to compute something else: its real predictions moved by 1e-3.
    real = model_exports._saved_model_predictions
    monkeypatch.setattr(model_exports, "_saved_model_predictions", lambda directory, rows: real(directory, rows) + 1e-3)
    result, _files = model_exports.export_and_verify(
        model, sample, ExportArguments(format="tf_saved_model", directory="kind/1"), tmp_path, ["output_0"])
    report = result["export"]
    assert report["status"] == "mismatch" and report["max_abs_diff"]["output_0"] == pytest.approx(1e-3, rel=1e-2)
