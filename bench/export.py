"""What a registry export costs and what the exported model serves: per model kind and format (SavedModel, ONNX,
LiteRT), the export job's work (Keras's `model.export`, the format's runtime loading the file, the parity check on
1,000 rows: workers/model_exports.py) in seconds, and predictions per second of each exported file in its own
runtime (TensorFlow's SavedModel `serve`, onnxruntime, the LiteRT interpreter) against Keras's `predict` on the same
rows, the same batches and the same machine. All predictors of a model are timed in alternation (A B C D, then
D C B A, ...), so load that changes on a shared machine hits them alike; the report gives medians and each run's
paired ratio to Keras.

    .venv/bin/python bench/export.py [--rows 20000] [--batch 256] [--runs 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from app.core.contract import ExportArguments
from workers.model_exports import export_and_verify
from workers.training import output_names


def _kinds(rng: np.random.Generator, rows: int) -> dict[str, Callable[[], tuple[Any, Any]]]:
    def mlp():
        return (keras.Sequential([keras.Input((72,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")]),
                rng.random((rows, 72), dtype="float32"))

    def two_in_two_out():
        a, b = keras.Input((32,), name="a"), keras.Input((16,), name="b")
        joined = keras.layers.concatenate([keras.layers.Dense(64, activation="relu")(a), b])
        return (keras.Model([a, b], [keras.layers.Dense(1, name="score")(joined),
                                     keras.layers.Dense(5, activation="softmax", name="label")(joined)]),
                [rng.random((rows, 32), dtype="float32"), rng.random((rows, 16), dtype="float32")])

    def cnn():
        return (keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                                  keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, activation="relu"),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]),
                rng.random((rows, 28, 28, 1), dtype="float32"))

    def lstm():
        return (keras.Sequential([keras.Input((20, 8)), keras.layers.LSTM(32), keras.layers.Dense(2)]),
                rng.random((rows, 20, 8), dtype="float32"))

    def embedding():
        return (keras.Sequential([keras.Input((40,), dtype="int32"), keras.layers.Embedding(5000, 32),
                                  keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)]),
                rng.integers(0, 5000, (rows, 40)).astype("int32"))

    return {"MLP 72-256-256-10": mlp, "functional 2 in, 2 out": two_in_two_out, "CNN 28x28": cnn,
            "LSTM(32) over 20 steps": lstm, "Embedding 5000x32": embedding}


def _batches(x: Any, batch: int) -> list[Any]:
    first = x[0] if isinstance(x, list) else x
    starts = range(0, len(first), batch)
    if isinstance(x, list):
        return [[part[start:start + batch] for part in x] for start in starts]
    return [x[start:start + batch] for start in starts]


def _serve(loaded: Any, batches: list[Any]) -> None:
    for part in batches:
        tf.nest.map_structure(lambda tensor: tensor.numpy(), loaded.serve(part))


def _parts(part: Any) -> list[Any]:
    return part if isinstance(part, list) else [part]


def _onnx(path: Path, batches: list[Any]) -> Callable[[], None]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [spec.name for spec in session.get_inputs()]

    def run() -> None:
        for part in batches:
            session.run(None, dict(zip(names, _parts(part), strict=True)))
    return run


def _litert(path: Path, batches: list[Any], one_row: bool) -> Callable[[], None]:
    """The LiteRT signature runner over the batches; a file made for one row (`batch` 1) is run row by row."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    names = list(runner.get_input_details())

    def run() -> None:
        for part in batches:
            arrays = _parts(part)
            if one_row:
                for row in range(len(arrays[0])):
                    runner(**dict(zip(names, [array[row:row + 1] for array in arrays], strict=True)))
            else:
                runner(**dict(zip(names, arrays, strict=True)))
    return run


def _alternate(arms: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[float]]:
    """Seconds of each arm per run, the arms in turn (A B, then B A, ...) after one untimed call of each (tracing)."""
    for arm in arms.values():
        arm()
    timings: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for run in range(runs):
        for name in names if run % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            arms[name]()
            timings[name].append(time.perf_counter() - started)
    return timings


FORMATS = {"tf_saved_model": ("SavedModel serve", 1e-5), "onnx": ("onnxruntime", 1e-5), "litert": ("LiteRT", 1e-4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    import ai_edge_litert
    import onnxruntime

    print(f"keras {keras.__version__}, tensorflow {tf.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"ai_edge_litert {ai_edge_litert.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.rows:,} rows in batches of {args.batch}, {args.runs} runs")
    print("| model | format | export + load + parity (s) | Keras predict (rows/s) | runtime (rows/s) | runtime / "
          "predict (medians; paired) | largest difference |")
    print("|---|---|---|---|---|---|---|")
    for label, build in _kinds(rng, args.rows).items():
        model, x = build()
        batches = _batches(x, args.batch)
        arms: dict[str, Callable[[], Any]] = {
            "keras": functools.partial(model.predict, x, batch_size=args.batch, verbose=0)}
        exported: dict[str, tuple[float, dict[str, Any]]] = {}
        with tempfile.TemporaryDirectory() as workdir:
            for format, (_runtime, tolerance) in FORMATS.items():
                root = Path(workdir) / format
                root.mkdir()
                started = time.perf_counter()
                result, _files = export_and_verify(
                    model, x, ExportArguments(format=format, directory="m/1", tolerance=tolerance), root,
                    output_names(model))
                exported[format] = (time.perf_counter() - started, result["export"])
                directory = root / "export" / "m" / "1"
                if format == "tf_saved_model":
                    arms[format] = functools.partial(_serve, tf.saved_model.load(str(directory)), batches)
                elif format == "onnx":
                    arms[format] = _onnx(directory / "model.onnx", batches)
                else:
                    arms[format] = _litert(directory / "model.tflite", batches, result["export"]["batch"] == 1)
            timings = _alternate(arms, args.runs)
        keras_rate = args.rows / statistics.median(timings["keras"])
        for format, (runtime, _tolerance) in FORMATS.items():
            export_s, report = exported[format]
            rate = args.rows / statistics.median(timings[format])
            paired = statistics.median(k / s for k, s in zip(timings["keras"], timings[format], strict=True))
            batch = " (one row at a time)" if report.get("batch") == 1 else ""
            print(f"| {label} | {runtime}{batch} | {export_s:.1f} | {keras_rate:,.0f} | {rate:,.0f} | "
                  f"{rate / keras_rate:.2f}; {paired:.2f} | {max(report['max_abs_diff'].values()):.1e} "
                  f"({report['status']}) |", flush=True)


if __name__ == "__main__":
    main()
