"""What a registry export costs and what the exported model serves: per model kind, the export job's work (Keras's
`model.export` to a SavedModel, TensorFlow's loader, the parity check on 1,000 rows: workers/model_exports.py) in
seconds, and predictions per second of the loaded SavedModel's `serve` against Keras's `predict` on the same rows,
the same batches and the same machine. The two predictors are timed in alternation (A B B A ...), so load that
changes on a shared machine hits both alike; the report gives medians and each run's paired ratio.

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"keras {keras.__version__}, tensorflow {tf.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.rows:,} rows in batches of {args.batch}, {args.runs} runs")
    print("| model | export + load + parity (s) | Keras predict (rows/s) | SavedModel serve (rows/s) | serve / predict "
          "(medians; paired) | largest difference |")
    print("|---|---|---|---|---|---|")
    for label, build in _kinds(rng, args.rows).items():
        model, x = build()
        with tempfile.TemporaryDirectory() as workdir:
            started = time.perf_counter()
            result, _files = export_and_verify(model, x, ExportArguments(format="tf_saved_model", directory="m/1"),
                                               Path(workdir), output_names(model))
            export_s = time.perf_counter() - started
            loaded = tf.saved_model.load(str(Path(workdir) / "export" / "m" / "1"))
            batches = _batches(x, args.batch)

            arms = {"keras": functools.partial(model.predict, x, batch_size=args.batch, verbose=0),
                    "serve": functools.partial(_serve, loaded, batches)}
            timings = _alternate(arms, args.runs)
        keras_rate = args.rows / statistics.median(timings["keras"])
        serve_rate = args.rows / statistics.median(timings["serve"])
        paired = statistics.median(k / s for k, s in zip(timings["keras"], timings["serve"], strict=True))
        report = result["export"]
        print(f"| {label} | {export_s:.1f} | {keras_rate:,.0f} | {serve_rate:,.0f} | {serve_rate / keras_rate:.2f}; "
              f"{paired:.2f} | {max(report['max_abs_diff'].values()):.1e} ({report['status']}) |")


if __name__ == "__main__":
    main()
