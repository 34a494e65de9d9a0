"""Training throughput through kerasd against plain `model.fit` on the same arrays, in one run (issues 10, 11).

Three arms on the same model and data, each a fresh model trained from scratch:

- plain: `model.fit(x, y, batch_size=B, epochs=3, verbose=0)` in this process, arrays in memory, every
  other argument Keras's default (verbose=0 makes the baseline faster than the default progress bar would);
  B is 128 for the MLP (the issue's figure names it) and Keras's default (32: `batch_size` not passed) for
  the CNN, whose figure names none ("plain `model.fit` with Keras's defaults"); `--batch-size` sets both;
- kerasd: the same fit as a job through the API and a warm worker, timed from POST /v1/jobs to the
  `finished` event as the client receives it (the outcome is committed in SQL by then), so it includes the
  request, the pickup, reading the dataset from the worker's cache, building and compiling the model, progress
  events to Redis, a whole-state checkpoint stored in SQL after every epoch, and the default artifacts
  (weights.h5, model.keras, architecture.json/yaml, history.csv; model.h5 before it became opt-in) exported and
  stored;
- kerasd with `"tuning": false`: the same job run exactly as the user's arguments say (issue 10's goal
  measures the service's own overhead with this one).

Models: the MLP 72→256→256→10 on 200,000 rows (issue 10 and 11: >= 0.98x untuned, >= 1.3x tuned) and the
CNN Conv2D 32 → MaxPool → Conv2D 64 → Dense 10 on 20,000 rows of 28x28x1 (issue 11: >= 1.2x tuned); Adam,
categorical cross-entropy, accuracy. Before the timed runs one untimed job fetches the dataset from SQL into
the worker's cache (its time is printed as the cold-cache figure) and one untimed plain fit warms this process.
Then the arms alternate A B C, C B A, ... so load from other work on a shared machine falls on all alike; the
report gives each arm's median rows/s and range, the ratio of medians, and the median and range of the
per-run ratios (the arms of one run are seconds apart). Rows per CPU-second (this process for plain; worker +
API for kerasd) are steadier than wall time when other processes share the cores.

    .venv/bin/python bench/throughput.py [--runs 5] [--models mlp,cnn] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import api_process, scratch_database, server_env, worker_process
from bench._jobs import cpu_seconds, create_model, median_range, run_job, upload_arrays

MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"rows": 200_000, "shape": (72,), "batch_size": 128, "spec": {
        "type": "sequential", "input_shape": [72], "layers": [
            {"class_name": "Dense", "units": 256, "activation": "relu"},
            {"class_name": "Dense", "units": 256, "activation": "relu"},
            {"class_name": "Dense", "units": 10, "activation": "softmax"}]}},
    "cnn": {"rows": 20_000, "shape": (28, 28, 1), "batch_size": None, "spec": {
        "type": "sequential", "input_shape": [28, 28, 1], "layers": [
            {"class_name": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
            {"class_name": "MaxPooling2D"},
            {"class_name": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"},
            {"class_name": "Flatten"},
            {"class_name": "Dense", "units": 10, "activation": "softmax"}]}},
}
COMPILE = {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]}
ARMS = ("plain", "kerasd", "kerasd_untuned")
GOALS = {("mlp", "kerasd_untuned"): 0.98, ("mlp", "kerasd"): 1.3, ("cnn", "kerasd"): 1.2}


def keras_model(spec: dict[str, Any]):
    import keras

    layers = [keras.Input(tuple(spec["input_shape"]))]
    for layer in spec["layers"]:
        config = {k: v for k, v in layer.items() if k != "class_name"}
        layers.append(getattr(keras.layers, layer["class_name"])(**config))
    return keras.Sequential(layers)


def fit_arguments(batch_size: int | None, epochs: int) -> dict[str, Any]:
    """The fit arguments both arms pass; no `batch_size` at all when it is Keras's default."""
    return {"epochs": epochs, **({"batch_size": batch_size} if batch_size else {})}


def plain_fit(spec: dict[str, Any], x: np.ndarray, y: np.ndarray, epochs: int,
              batch_size: int | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of build + compile + fit, as a user runs it."""
    started, cpu = time.perf_counter(), time.process_time()
    model = keras_model(spec)
    model.compile(**COMPILE)
    model.fit(x, y, verbose=0, **fit_arguments(batch_size, epochs))
    return time.perf_counter() - started, time.process_time() - cpu


def job_request(model_id: str, dataset_id: str, epochs: int, batch_size: int | None, *,
                tuning: bool) -> dict[str, Any]:
    return {"model_id": model_id, "compile": COMPILE, "tuning": tuning,
            "fit": {"x": {"dataset_id": dataset_id, "array": "x"}, "y": {"dataset_id": dataset_id, "array": "y"},
                    **fit_arguments(batch_size, epochs)}}


def bench_model(name: str, client: httpx.Client, pids: list[int], runs: int, epochs: int,
                batch_size: int | None) -> dict[str, Any]:
    conf = MODELS[name]
    rng = np.random.default_rng(0)
    x = rng.random((conf["rows"], *conf["shape"]), dtype="float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, conf["rows"])]
    dataset_id = upload_arrays(client, f"{name}.npz", x=x, y=y)
    model_id = create_model(client, conf["spec"])
    rows = conf["rows"] * epochs

    cold = run_job(client, job_request(model_id, dataset_id, 1, batch_size, tuning=True))
    assert cold.status == "succeeded", cold.job.get("error")
    print(f"[{name}] cold cache (dataset fetched from SQL), 1 epoch: {conf['rows'] / cold.seconds:,.0f} rows/s",
          flush=True)
    plain_fit(conf["spec"], x[:2048], y[:2048], 1, batch_size)  # warms this process as the worker is warm

    speed: dict[str, list[float]] = {arm: [] for arm in ARMS}
    cpu_speed: dict[str, list[float]] = {arm: [] for arm in ARMS}
    paired: dict[str, list[float]] = {arm: [] for arm in ARMS[1:]}
    progress: list[dict[str, Any]] = []
    tuning: dict[str, Any] = {}
    for run in range(runs):
        seconds: dict[str, float] = {}
        for arm in (ARMS if run % 2 == 0 else ARMS[::-1]):
            if arm == "plain":
                wall, cpu = plain_fit(conf["spec"], x, y, epochs, batch_size)
            else:
                before = sum(cpu_seconds(pid) for pid in pids)
                job = run_job(client, job_request(model_id, dataset_id, epochs, batch_size, tuning=arm == "kerasd"))
                assert job.status == "succeeded", job.job.get("error")
                wall, cpu = job.seconds, sum(cpu_seconds(pid) for pid in pids) - before
                if arm == "kerasd":
                    progress.append(job.progress())
                    tuning = job.job["result"]["tuning"]
            seconds[arm] = wall
            speed[arm].append(rows / wall)
            cpu_speed[arm].append(rows / cpu)
        for arm in ARMS[1:]:
            paired[arm].append(seconds["plain"] / seconds[arm])
        print(f"[{name}] run {run + 1}: " + ", ".join(f"{arm} {rows / seconds[arm]:,.0f} rows/s" for arm in ARMS)
              + f"; load {os.getloadavg()[0]:.1f}", flush=True)
    return {"speed": speed, "cpu": cpu_speed, "paired": paired, "progress": progress, "tuning": tuning,
            "batch_size": batch_size}


def report(name: str, found: dict[str, Any], epochs: int, runs: int) -> None:
    speed, cpu, paired = found["speed"], found["cpu"], found["paired"]
    plain = statistics.median(speed["plain"])
    batch = found["batch_size"] or "32 (Keras's default, not passed)"
    print(f"\n== {name}: {MODELS[name]['rows']:,} rows, batch {batch}, {epochs} epochs, {runs} runs per arm ==")
    for arm in ARMS:
        print(f"{arm:>15}: rows/s {median_range(speed[arm], 0)}; rows per CPU-second {median_range(cpu[arm], 0)}")
    for arm in ARMS[1:]:
        goal = GOALS.get((name, arm))
        ratio = statistics.median(speed[arm]) / plain
        cpu_ratio = statistics.median(cpu[arm]) / statistics.median(cpu["plain"])
        verdict = "" if goal is None else f"  goal >= {goal}: {'met' if ratio >= goal else 'MISSED'}"
        print(f"{arm} / plain: ratio of medians {ratio:.3f}; per-run paired {median_range(paired[arm])}; "
              f"per CPU-second {cpu_ratio:.3f}{verdict}")
    rates = [p["per_s"] for p in found["progress"] if p["per_s"]]
    gaps = [p["longest_gap_s"] for p in found["progress"] if p["longest_gap_s"]]
    print(f"kerasd batch events a second during training: {median_range(rates, 2)}; longest gap between "
          f"progress events {median_range(gaps, 2)} s")
    print(f"kerasd tuning chosen: {found['tuning']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="every model's batch size (default: the MLP 128, the CNN Keras's default)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="kerasd-bench-") as tmp, scratch_database() as database_url:
        workdir = Path(tmp)
        env = server_env(database_url, workdir / "data")
        with api_process(env, workdir) as (api, base_url), worker_process(env, workdir) as worker, \
                httpx.Client(base_url=base_url, timeout=600) as client:
            pids = [worker.popen.pid, api.popen.pid]
            for name in args.models.split(","):
                batch_size = args.batch_size or MODELS[name]["batch_size"]
                results[name] = bench_model(name, client, pids, args.runs, args.epochs, batch_size)
    for name, found in results.items():
        report(name, found, args.epochs, args.runs)


if __name__ == "__main__":
    main()
