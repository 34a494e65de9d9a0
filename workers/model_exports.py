"""An export job (a registered model version in a serving format), proven: Keras's own `model.export` writes the
format, the format's own runtime loads what was written (TensorFlow's SavedModel loader, onnxruntime, the LiteRT
interpreter), and its predictions of the sample are compared with Keras's `predict`, output by output
(DESIGN.md §16). Without a sample, rows are generated from the model's input shapes and dtypes, seeded."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.core.contract import EXPORT_FILES, ExportArguments

# Rows made when the export request gives no sample, and the seed they are drawn with (reported with the result).
GENERATED_ROWS = 100
GENERATED_SEED = 0
# A sequence length for an input whose steps are not fixed (`Input((None, 8))`) when rows are generated.
GENERATED_STEPS = 8


class ExportUnsupported(RuntimeError):
    """Keras (or the format's converter) cannot write this model in this format, or this worker lacks the
    format's packages: the job fails with the reason and what to do."""


@dataclass
class Written:
    """What one format's exporter wrote and how its runtime predicted the sample."""

    predictions: list[np.ndarray]
    runtime: str
    details: dict[str, Any]


def _by_output(value: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Predictions by output name, whatever structure they came in (one array, a list, a dict)."""
    if isinstance(value, dict):
        return {str(name): np.asarray(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return {name: np.asarray(item) for name, item in zip(names, value, strict=True)}
    return {names[0]: np.asarray(value)}


def _inputs(model: keras.Model) -> list[Any]:
    return list(model.inputs)


def _as_list(model: keras.Model, x: Any) -> list[np.ndarray]:
    """The sample as one array per model input, in the model's input order, each in that input's dtype (what
    Keras's predict casts to itself, and what onnxruntime and LiteRT insist on)."""
    inputs = _inputs(model)
    if isinstance(x, dict):
        arrays = [x[tensor.name] for tensor in inputs]
    elif isinstance(x, list | tuple):
        arrays = list(x)
    else:
        arrays = [x]
    return [np.asarray(array) if tensor.dtype == "string" else np.asarray(array).astype(tensor.dtype, copy=False)
            for array, tensor in zip(arrays, inputs, strict=True)]


def _structured(model: keras.Model, arrays: list[np.ndarray]) -> Any:
    """The arrays in the structure the model was built with (a functional model on a dict of inputs takes a dict)."""
    try:
        structure = model.input
    except AttributeError:  # a Sequential model has no `input` of its own until called ("never been called")
        structure = None
    if isinstance(structure, dict):
        position = {id(tensor): index for index, tensor in enumerate(_inputs(model))}
        return {key: arrays[position[id(tensor)]] for key, tensor in structure.items()}
    return arrays[0] if len(arrays) == 1 else arrays


def generated_sample(model: keras.Model, rows: int = GENERATED_ROWS, seed: int = GENERATED_SEED) -> list[np.ndarray]:
    """Rows drawn from each input's shape and dtype: floats uniform in [0, 1), integers below the smallest
    `Embedding`'s `input_dim` (every index valid; below 2 without an Embedding), booleans at random."""
    rng = np.random.default_rng(seed)
    vocabularies = [layer.input_dim for layer in _layers(model) if isinstance(layer, keras.layers.Embedding)]
    high = min(vocabularies) if vocabularies else 2
    arrays = []
    for tensor in _inputs(model):
        shape = (rows, *(GENERATED_STEPS if size is None else size for size in tensor.shape[1:]))
        dtype = np.dtype(tensor.dtype) if tensor.dtype != "string" else None
        if dtype is None or dtype.kind not in "fiub":
            raise ExportUnsupported(f"input {tensor.name!r} is {tensor.dtype}, and rows of it cannot be made up: give "
                                    "the export a sample of your own rows (`sample`)")
        if dtype.kind == "f":
            arrays.append(rng.random(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, high, shape).astype(dtype))
    return arrays


def _layers(layer: Any) -> list[Any]:
    """The layer and every layer inside it (nested models' layers too)."""
    return [layer, *(found for inner in getattr(layer, "layers", []) for found in _layers(inner))]


def _saved_model(model: keras.Model, sample: list[np.ndarray], target: Path) -> Written:
    """Keras's SavedModel, run by TensorFlow's own loader through the `serve` endpoint Keras wrote."""
    import tensorflow as tf

    _keras_export(model, target, "tf_saved_model")
    loaded = tf.saved_model.load(str(target))
    found = loaded.serve(_structured(model, sample))
    found = tf.nest.map_structure(lambda tensor: tensor.numpy(), found)
    return Written(_flat(found), "tensorflow.saved_model.load", {})


def _onnx(model: keras.Model, sample: list[np.ndarray], target: Path) -> Written:
    """Keras's ONNX file (through tf2onnx on TensorFlow, jax2onnx on JAX), run by onnxruntime on the CPU."""
    import onnxruntime

    target.mkdir(parents=True)
    path = target / "model.onnx"
    _keras_export(model, path, "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Keras writes the inputs in the model's input order (their names are the Keras inputs' names).
    feed = _feed([spec.name for spec in session.get_inputs()], model, sample)
    return Written(session.run(None, feed), f"onnxruntime {onnxruntime.__version__}", {})


def _feed(names: list[str], model: keras.Model, sample: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The runtime's inputs by name: Keras names them after the model's inputs, in the model's order."""
    by_input = {tensor.name: array for tensor, array in zip(_inputs(model), sample, strict=True)}
    if set(names) == set(by_input):
        return {name: by_input[name] for name in names}
    return dict(zip(names, sample, strict=True))


def _litert(model: keras.Model, sample: list[np.ndarray], target: Path) -> Written:
    """Keras's LiteRT file, run by the LiteRT interpreter (`ai-edge-litert`, no TensorFlow). A file that needs
    TensorFlow's Select ops (an LSTM over a batch of unknown size keeps TensorFlow's TensorList ops) runs only with
    the Flex delegate, which the LiteRT interpreter lacks: the model is then exported again for a batch of one row,
    which the converter lowers to LiteRT's own ops, and the sample is predicted row by row."""
    from ai_edge_litert.interpreter import Interpreter

    target.mkdir(parents=True)
    path = target / "model.tflite"
    _keras_export(model, path, "litert")
    details: dict[str, Any] = {"batch": "any"}
    try:
        runner = Interpreter(model_path=str(path)).get_signature_runner()
        found = runner(**_feed(list(runner.get_input_details()), model, sample))
    except RuntimeError as exc:
        if "Select TensorFlow op" not in str(exc):
            raise
        path.unlink()
        _keras_export(model, path, "litert", input_signature=_one_row_signature(model))
        try:
            runner = Interpreter(model_path=str(path)).get_signature_runner()
            names = list(runner.get_input_details())
            rows = [runner(**_feed(names, model, [array[row:row + 1] for array in sample]))
                    for row in range(len(sample[0]))]
        except RuntimeError as again:
            if "Select TensorFlow op" not in str(again):
                raise
            ops = sorted(set(re.findall(r"\((Flex\w+)\)", f"{exc} {again}"))) or ["unnamed"]
            raise ExportUnsupported(
                f"Keras's LiteRT file of this model needs TensorFlow Select ops ({', '.join(ops)}), even for a batch "
                "of one row, and the LiteRT interpreter runs LiteRT's own ops only (Select ops need the Flex "
                f"delegate, which is not verified here): {SUGGESTIONS['litert']}") from again
        found = {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}
        details = {"batch": 1, "note": "Keras's file for any batch size needs TensorFlow Select ops (the Flex "
                                       "delegate), which the LiteRT interpreter does not run; this file takes one "
                                       "row at a time and uses LiteRT's own ops only"}
    import ai_edge_litert

    # The signature's outputs are output_0, output_1, ... in the model's output order.
    ordered = sorted(found, key=lambda name: int(name.rsplit("_", 1)[-1]) if name[-1].isdigit() else 0)
    return Written([found[name] for name in ordered], f"ai_edge_litert {ai_edge_litert.__version__}", details)


def _one_row_signature(model: keras.Model) -> list[Any]:
    import tensorflow as tf

    specs = [tf.TensorSpec((1, *tensor.shape[1:]), tensor.dtype, name=tensor.name) for tensor in _inputs(model)]
    return specs if len(specs) == 1 else [specs]


def _flat(found: Any) -> list[np.ndarray]:
    if isinstance(found, dict):
        return [np.asarray(value) for value in found.values()]
    if isinstance(found, list | tuple):
        return [np.asarray(value) for value in found]
    return [np.asarray(found)]


SUGGESTIONS = {
    "tf_saved_model": "export it as onnx or litert, or download model.keras and export it yourself",
    "onnx": "export it as tf_saved_model (or litert), or download model.keras and convert it yourself",
    "litert": "export it as tf_saved_model or onnx, or download model.keras and convert it yourself",
}


def _keras_export(model: keras.Model, path: Path, format: str, **kwargs: Any) -> None:
    """`model.export`, its failure told as Keras's own message and what to do instead."""
    try:
        model.export(str(path), format=format, verbose=False, **kwargs)
    except Exception as exc:
        message = str(exc).strip().splitlines()
        raise ExportUnsupported(f"Keras cannot export this model as {format} ({type(exc).__name__}: "
                                f"{' '.join(message)[:1500]}): {SUGGESTIONS[format]}") from exc


def _needs(format: str) -> None:
    """The packages this worker needs for the format on its Keras backend, else why not and where it runs."""
    backend = keras.backend.backend()
    where = "run exports on a worker with Keras's TensorFlow backend (kerasd[cpu] or kerasd[gpu])"
    if format == "litert" and backend != "tensorflow":
        raise ExportUnsupported(f"LiteRT export requires Keras's TensorFlow backend, and this worker runs Keras on "
                                f"{backend}: {where}")
    needed = {"tf_saved_model": ["tensorflow"],
              "onnx": ["tf2onnx" if backend == "tensorflow" else "jax2onnx", "onnxruntime"],
              "litert": ["tensorflow", "ai_edge_litert"]}[format]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportUnsupported(f"a {format} export needs {', '.join(missing)} on the worker, and this one (Keras on "
                                f"{backend}) lacks it: {where}")


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TensorFlow's TensorFloat-32 off for the export job, restored after it. On Ampere and newer GPUs TensorFlow
    multiplies float32 matrices in TF32 by default (a 10-bit mantissa, differences near 1e-3), while onnxruntime and
    LiteRT here run float32 on the CPU: Keras's reference predictions must be float32's to be compared within 1e-5.
    No effect on a CPU, and none on a JAX worker (whose exports run in TensorFlow only for SavedModel)."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    was = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(was)


EXPORTERS: dict[str, Callable[[keras.Model, list[np.ndarray], Path], Written]] = {
    "tf_saved_model": _saved_model, "onnx": _onnx, "litert": _litert}


def export_and_verify(model: keras.Model, x: Any, arguments: ExportArguments, workdir: Path,
                      output_names: list[str]) -> tuple[dict[str, Any], list[tuple[str, Path, str]]]:
    """(the job's result: `export` with the format, `verified` or `mismatch`, the largest absolute difference per
    output and the tolerance; the artifact: the export zipped as `<name>/<version>/...`, the layout of TensorFlow
    Serving and of Triton's model repository). `x` None: rows generated from the model's inputs."""
    _needs(arguments.format)
    exporter, artifact = EXPORTERS[arguments.format], EXPORT_FILES[arguments.format]
    generated = x is None
    arrays = generated_sample(model) if generated else _as_list(model, x)
    sample = [array[:arguments.max_rows] for array in arrays]
    root = workdir / "export"
    with exact_float32():
        expected = _by_output(model.predict(_structured(model, sample), verbose=0), output_names)
        written = exporter(model, sample, root / arguments.directory)
    got = _by_output(written.predictions, output_names)
    differences = {name: float(np.max(np.abs(got[name].astype("float64") - expected[name].astype("float64"))))
                   for name in expected}
    verified = all(difference <= arguments.tolerance for difference in differences.values())
    archive = Path(shutil.make_archive(str(workdir / artifact.removesuffix(".zip")), "zip", root))
    rows = len(next(iter(expected.values())))
    report = {"format": arguments.format, "status": "verified" if verified else "mismatch",
              "max_abs_diff": differences, "tolerance": arguments.tolerance, "rows": rows,
              "directory": arguments.directory, "runtime": written.runtime,
              "sample": {"generated": True, "seed": GENERATED_SEED} if generated else {"generated": False},
              **written.details}
    return {"export": report}, [(artifact, archive, "application/zip")]
