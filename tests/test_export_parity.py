"""The worker's export and its proof (workers/model_exports.py) on each kind of model the tutorial and users train, in
each format: Keras writes the file, the format's own runtime (TensorFlow's SavedModel loader, onnxruntime, the LiteRT
interpreter) runs it, and its predictions are Keras's within the format's tolerance (the registry's export jobs run
exactly this; tests/test_registry.py and tests/test_registry_clients.py run exports through the API and a worker).
The formats x model kinds table in docs/exports.md is this file's result."""

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


def _dict_inputs() -> tuple[Any, Any]:
    import keras

    a, b = keras.Input((8,), name="a"), keras.Input((4,), name="b")
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(3)(keras.layers.concatenate([a, b])))
    return model, {"a": RNG.random((30, 8), dtype="float32"), "b": RNG.random((30, 4), dtype="float32")}


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


TOLERANCES = {"tf_saved_model": 1e-5, "onnx": 1e-5, "litert": 1e-4}
FILES = {"tf_saved_model": "saved_model.pb", "onnx": "model.onnx", "litert": "model.tflite"}
KINDS = [_sequential, _two_inputs_two_outputs, _dict_inputs, _plugin_layer_and_model, _cnn, _lstm, _embedding]


def _export(model: Any, sample: Any, format: str, workdir: Path) -> tuple[dict[str, Any], Any]:
    from app.core.contract import ExportArguments
    from workers.model_exports import export_and_verify
    from workers.training import output_names

    result, files = export_and_verify(model, sample, ExportArguments(format=format, directory="kind/1",
                                                                     tolerance=TOLERANCES[format]),
                                      workdir, output_names(model))
    return result["export"], files


@pytest.mark.parametrize("format", list(TOLERANCES))
@pytest.mark.parametrize("build", KINDS, ids=lambda build: build.__name__.strip("_"))
def test_each_format_predicts_what_keras_predicts_in_its_own_runtime(build: Callable[[], tuple[Any, Any]],
                                                                      format: str, tmp_path: Path):
    from workers.training import output_names

    model, sample = build()
    report, [(artifact, archive, media_type)] = _export(model, sample, format, tmp_path)
    assert report["status"] == "verified", report
    assert set(report["max_abs_diff"]) == set(output_names(model))
    assert max(report["max_abs_diff"].values()) <= TOLERANCES[format] == report["tolerance"]
    assert report["rows"] == 30 and report["sample"] == {"generated": False}
    assert media_type == "application/zip" and artifact == {"tf_saved_model": "savedmodel.zip"}.get(format,
                                                                                                     f"{format}.zip")
    assert f"kind/1/{FILES[format]}" in zipfile.ZipFile(archive).namelist()
    if format == "litert":
        # Keras's LSTM over any batch size keeps TensorFlow's TensorList ops, which LiteRT runs only with the Flex
        # delegate: its file is made for one row at a time instead; every other kind takes any batch size.
        assert report["batch"] == (1 if build is _lstm else "any"), report


def test_without_a_sample_rows_are_generated_from_the_inputs_and_seeded(tmp_path: Path):
    from workers.model_exports import GENERATED_ROWS, generated_sample

    model, _sample = _embedding()
    [rows] = generated_sample(model)
    # Integer indices below the Embedding's vocabulary (50): every row is a valid input.
    assert rows.shape == (GENERATED_ROWS, 12) and rows.dtype == np.int32 and 0 <= rows.min() and rows.max() < 50
    assert np.array_equal(rows, generated_sample(model)[0])
    model, _sample = _two_inputs_two_outputs()
    a, b = generated_sample(model)
    assert a.shape == (GENERATED_ROWS, 8) and b.shape == (GENERATED_ROWS, 4) and a.dtype == np.float32

    report, _files = _export(model, None, "onnx", tmp_path)
    assert report["status"] == "verified" and report["rows"] == GENERATED_ROWS, report
    assert report["sample"] == {"generated": True, "seed": 0}


def test_a_model_litert_cannot_run_without_tensorflow_fails_with_the_reason_and_what_to_do(tmp_path: Path):
    import keras

    from workers.model_exports import ExportUnsupported

    # Under mixed precision Keras's float16 matrix product stays a TensorFlow op (FlexMatMul) in the LiteRT file,
    # for a batch of one row too: the LiteRT interpreter cannot run it, so nothing can be verified.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ExportUnsupported, match=r"TensorFlow Select ops \(FlexMatMul\).*export it as tf_saved_model "
                                                r"or onnx"):
        _export(model, RNG.random((5, 4), dtype="float32"), "litert", tmp_path)


def test_a_format_keras_cannot_write_fails_with_keras_message_and_a_suggestion(tmp_path: Path, monkeypatch):
    import keras

    from workers.model_exports import ExportUnsupported

    model, sample = _sequential()

    def refuse(self: Any, filepath: str, format: str = "tf_saved_model", **kwargs: Any) -> None:
        # What Keras 3.15 raises for LiteRT on the JAX backend (keras/src/models/model.py), raised here on TensorFlow.
        raise ValueError("LiteRT export requires TensorFlow or PyTorch backend.")

    monkeypatch.setattr(keras.Model, "export", refuse)
    with pytest.raises(ExportUnsupported, match=r"Keras cannot export this model as litert \(ValueError: LiteRT "
                                                r"export requires TensorFlow or PyTorch backend.\): export it as "
                                                r"tf_saved_model or onnx"):
        _export(model, sample, "litert", tmp_path)


def test_a_difference_past_the_tolerance_is_a_mismatch_with_its_figures(tmp_path: Path, monkeypatch):
    from workers import model_exports

    model, sample = _sequential()
    # onnxruntime (outside kerasd) made to compute something else: its real predictions moved by 1e-3.
    real = model_exports.EXPORTERS["onnx"]

    def moved(*args: Any) -> Any:
        written = real(*args)
        written.predictions = [prediction + 1e-3 for prediction in written.predictions]
        return written

    monkeypatch.setitem(model_exports.EXPORTERS, "onnx", moved)
    report, _files = _export(model, sample, "onnx", tmp_path)
    assert report["status"] == "mismatch" and report["max_abs_diff"]["output_0"] == pytest.approx(1e-3, rel=1e-2)


def test_keras_reference_predictions_are_exact_float32_not_tf32(tmp_path: Path, monkeypatch):
    import tensorflow as tf

    from workers import model_exports

    # On an Ampere or newer GPU TensorFlow multiplies float32 in TF32 by default (differences near 1e-3), which the
    # CPU runtimes do not: the export job turns it off while Keras predicts and the runtime runs, and restores it.
    model, sample = _sequential()
    seen = []
    real = model_exports.EXPORTERS["onnx"]

    def watched(*args: Any) -> Any:
        seen.append(tf.config.experimental.tensor_float_32_execution_enabled())
        return real(*args)

    monkeypatch.setitem(model_exports.EXPORTERS, "onnx", watched)
    assert tf.config.experimental.tensor_float_32_execution_enabled()
    _export(model, sample, "onnx", tmp_path)
    assert seen == [False] and tf.config.experimental.tensor_float_32_execution_enabled()
