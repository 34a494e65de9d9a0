"""Sweeps on real processes (an API and two CPU workers on a scratch database), in one run:

1. Grid against ASHA on scikit-learn's digits (8x8x1) with a small CNN (Conv2D -> Flatten -> Dense 10): the full
   grid of 27 configurations (filters {8, 16, 32} x learning rate {1e-3, 3e-3, 1e-2} x batch size {16, 32, 64}),
   each trained `--epochs` epochs, against a random sweep of as many trials over the same space with Optuna's
   SuccessiveHalvingPruner (ASHA: rungs at 1, 3, 9 epochs, reduction factor 3). Reported: each one's best
   validation accuracy, and the epochs ASHA trained as a fraction of the grid's.
2. Scheduling overhead: from a trial's end (its terminal event) to the next trial's first batch *beginning* on the
   same worker (Keras's on_train_batch_begin, from the worker's `first batch` log line: all kerasd does before
   training is done then), median and 90th percentile over the grid's and ASHA's trials, in parts: (a) the end to the
   next trial's `queued` event (the sweep's step: tell, ask, the job stored and queued; 0 when the trial was queued
   before the end), (b) to its `started` (the message taken, the job claimed), (c) to fit's start (its `fit:` log
   event: job read, data, model, tuning, compile; the workers' `ready to fit` log lines split it further), (c') to
   the first batch's begin (Keras's fit before its first step). Apart from it, and as visible: the first step
   itself (the first batch's begin to its end: Keras traces the train step and runs the first execution). Then, with
   the workers stopped, what plain Keras pays for the same trials in one warm process (build, compile, fit's call to
   the first batch's begin, the first step with the same steps_per_execution), as KerasTuner's trials do.
   `--overhead-only` runs the grid alone (`--trials` of its points, `--epochs` each), once for each `--concurrent`
   number of trials at once: 2 (as many as the workers: the next trial is made by the step after a trial's end)
   and 3 (one waits in the queue before the end).
3. 200 one-epoch trials of a tiny MLP on 2 workers: the sweep's wall time (created to last trial's end) against
   the trials' own time (each job's started to finished) divided by the 2 workers.

    .venv/bin/python bench/sweep.py [--epochs 9] [--tiny-trials 200] [--grid-only]
    .venv/bin/python bench/sweep.py --overhead-only [--epochs 1] [--trials 27] [--concurrent 2,3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.statuses import TERMINAL_EVENTS
from bench._harness import api_process, scratch_database, server_env, worker_process
from tests.seed import npz_bytes, ref, upload

CNN = {
    "type": "sequential",
    "name": "digits_cnn",
    "input_shape": [8, 8, 1],
    "layers": [
        {"class_name": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"},
        {"class_name": "Flatten"},
        {"class_name": "Dense", "units": 10, "activation": "softmax"},
    ],
}
TINY = {
    "type": "sequential",
    "name": "tiny",
    "input_shape": [8],
    "layers": [{"class_name": "Dense", "units": 4, "activation": "softmax"}],
}
SPACE = {
    "model.layers[0].filters": {"choice": [8, 16, 32]},
    "compile.optimizer.config.learning_rate": {"choice": [1e-3, 3e-3, 1e-2]},
    "fit.batch_size": {"choice": [16, 32, 64]},
}


def digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    found = load_digits()
    x = (found.images / 16.0).astype("float32")[..., None]
    y = np.eye(10, dtype="float32")[found.target]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    return {"train_x": x[:1400], "train_y": y[:1400], "val_x": x[1400:], "val_y": y[1400:]}


def fit_job(model_id: str, dataset: str, epochs: int, batch_size: int = 32) -> dict[str, Any]:
    return {
        "kind": "fit",
        "model_id": model_id,
        "seed": 1,
        "artifacts": ["weights.h5"],
        "compile": {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 1e-3}},
            "loss": "categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {
            "x": ref(dataset, "train_x"),
            "y": ref(dataset, "train_y"),
            "epochs": epochs,
            "batch_size": batch_size,
            "validation_data": {"x": ref(dataset, "val_x"), "y": ref(dataset, "val_y")},
        },
    }


def run_sweep(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = http.post("/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    while True:
        sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["status"] != "running" and all(t["objective"] is not None or t["note"] for t in sweep["trials"]):
            return sweep
        time.sleep(1.0)


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def job_times(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """A trial job's worker and the times of its `queued`, `started`, fit's start (its `fit:` log event, from
    on_train_begin) and end, from its event stream (replayed after its end)."""
    found: dict[str, Any] = {"job_id": job_id, "fit": None, "queued": None}
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                if kind == "queued" and found["queued"] is None:
                    found["queued"] = stamp(event["ts"])
                elif kind == "started":
                    found["worker"] = event["data"].get("worker")
                    found["started"] = stamp(event["ts"])
                elif kind == "log" and found["fit"] is None and event["data"]["message"].startswith("fit: "):
                    found["fit"] = stamp(event["ts"])
                elif kind in TERMINAL_EVENTS:
                    found["end"] = stamp(event["ts"])
                    return found
    return found


TUNING_LINE = r"tuning planned: step=([\d.]+)ms( \(estimated\))? inputs=([\d.]+)ms"
STEP_LINE = r"sweep \S+: the step after job (\S+) queued \d+ trial\(s\) in ([\d.]+) ms \((.*); then (.*)\)"


def worker_lines(log_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """{job id: what the workers' log says of it}: `phases` ({phase: ms}, the `ready to fit` line of
    workers/start_phases.py), `begin` and `end` (wall-clock seconds of its first batch's begin and end, the
    `first batch` line) and `step_ms` (the sweep's step after its end, run by its worker)."""
    found: dict[str, dict[str, Any]] = {}
    for log_dir in log_dirs:
        for line in (log_dir / "worker.log").read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            message = record.get("message", "")
            if match := re.match(r"job (\S+) ready to fit: (.*)", message):
                found.setdefault(match[1], {})["phases"] = {
                    name: float(ms) for name, ms in re.findall(r"([\w+]+)=([\d.]+)ms", match[2])
                }
            elif match := re.match(r"job (\S+) first batch: .*\(begin=([\d.]+) end=([\d.]+)\)", message):
                found.setdefault(match[1], {}).update(begin=float(match[2]), end=float(match[3]))
            elif (match := re.match(TUNING_LINE, message)) and record.get("job_id"):
                found.setdefault(record["job_id"], {})["tuning"] = {
                    "step": float(match[1]),
                    "estimated": bool(match[2]),
                    "inputs": float(match[3]),
                }
            elif match := re.match(STEP_LINE, message):
                found.setdefault(match[1], {}).update(
                    step_ms=float(match[2]),
                    step_parts={
                        **{name: float(ms) for name, ms in re.findall(r"(\w+)=([\d.]+)ms", match[3])},
                        **{f"then {name}": float(ms) for name, ms in re.findall(r"(\w+)=([\d.]+)ms", match[4])},
                    },
                )
    return found


PARTS = (
    "(a) end -> next trial queued (the sweep's step; 0 when it was queued before)",
    "(b) -> claimed (`started`: the message taken, the job claimed)",
    "(c) -> fit's start (job read, data, model build, tuning, compile)",
    "(c') -> the first batch begins (Keras's fit before its first step)",
)


def gaps(http: httpx.Client, sweeps: list[dict[str, Any]], lines: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """For trials that ran back to back on a worker: the scheduling overhead, from one's end (its terminal event) to
    the next one's first batch beginning (Keras's on_train_batch_begin: everything kerasd does before training is
    done), in parts (a)-(c') (PARTS); and apart from it, the next one's first step (its first batch's begin to its
    end: Keras tracing the train step and running its first execution); with the step after the first trial's
    end, as its worker timed it."""
    times = [job_times(http, trial["job_id"]) for sweep in sweeps for trial in sweep["trials"]]
    found = []
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for item in times:
        line = lines.get(item["job_id"], {})
        if all(item.get(key) for key in ("worker", "queued", "started", "fit", "end")) and "begin" in line:
            batch = {"batch_begin": line["begin"], "batch_end": line["end"]}
            by_worker.setdefault(item["worker"], []).append({**item, **batch})
    for items in by_worker.values():
        items.sort(key=lambda item: item["started"])
        for a, b in itertools.pairwise(items):
            if b["started"] > a["end"]:
                queued = max(a["end"], b["queued"])
                found.append(
                    {
                        "job_id": b["job_id"],
                        "parts": [
                            queued - a["end"],
                            b["started"] - queued,
                            b["fit"] - b["started"],
                            b["batch_begin"] - b["fit"],
                        ],
                        "first_step": b["batch_end"] - b["batch_begin"],
                        "step_ms": lines.get(a["job_id"], {}).get("step_ms"),
                        "step_parts": lines.get(a["job_id"], {}).get("step_parts", {}),
                    }
                )
    return found


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    return f"median {statistics.median(ordered) * 1000:.0f} ms, p90 {ordered[int(len(ordered) * 0.9)] * 1000:.0f} ms"


def median_parts(items: list[dict[str, float]]) -> str:
    """The parts (name, median) over dicts of named parts in ms, in the order the parts first appear."""
    names = list(dict.fromkeys(name for item in items for name in item))
    return ", ".join(f"{name} {statistics.median(item.get(name, 0.0) for item in items):.0f}" for name in names)


def show_gaps(title: str, found: list[dict[str, Any]], lines: dict[str, dict[str, Any]]) -> None:
    parts = [item["parts"] for item in found]
    if not parts:
        print(f"{title}: no two trials ran back to back on a worker")
        return
    print(
        f"{title}: scheduling overhead over {len(found)} gaps (a trial's end to the next trial's first batch "
        f"beginning, same worker): {ms([sum(p) for p in parts])}"
    )
    for index, name in enumerate(PARTS):
        print(f"  {name}: {ms([p[index] for p in parts])}")
    steps = [item["step_ms"] / 1e3 for item in found if item["step_ms"] is not None]
    if steps:
        print(
            f"  the sweep's step after each trial's end, as its worker timed it: {ms(steps)}; a random or grid "
            "sweep's next trial is queued after its first part (in the gap as (a)), its end told in the second (then)"
        )
        print("    of which (median ms): " + median_parts([item["step_parts"] for item in found if item["step_parts"]]))
    known = [lines[item["job_id"]]["phases"] for item in found if "phases" in lines.get(item["job_id"], {})]
    if known:
        print("  the worker's start, from its log (median ms): " + median_parts(known))
    tuned = [lines[item["job_id"]]["tuning"] for item in found if "tuning" in lines.get(item["job_id"], {})]
    if tuned:
        estimated = sum(item["estimated"] for item in tuned)
        print(
            f"  of tuning: the step (median ms) {statistics.median(item['step'] for item in tuned):.0f} ({estimated} "
            f"of {len(tuned)} estimated from an earlier trial of the sweep, not measured), the arrays made into "
            f"datasets {statistics.median(item['inputs'] for item in tuned):.0f}"
        )
    print(
        f"  apart from the overhead: the first step (the first batch's begin to its end: Keras traces the train "
        f"step, runs the first execution): {ms([item['first_step'] for item in found])}; the first batch's end: "
        f"{ms([sum(item['parts']) + item['first_step'] for item in found])} after the last trial's end"
    )


def trial_configs(http: httpx.Client, sweep: dict[str, Any]) -> list[tuple[int, float, int, int]]:
    """(filters, learning rate, batch size, the steps_per_execution its job's tuning chose) of each trial."""
    found = []
    for trial in sweep["trials"]:
        tuning = http.get(f"/v1/jobs/{trial['job_id']}").json()["result"].get("tuning", {})
        found.append((*(trial["params"][path] for path in SPACE), int(tuning.get("steps_per_execution", 1))))
    return found


def keras_first_batches(data: dict[str, np.ndarray], configs: list[tuple[int, float, int, int]]) -> list[list[float]]:
    """What plain Keras pays per trial in one warm process, as KerasTuner's trials do: [build and compile, fit's call
    to its first batch's begin, the first step (the first batch's begin to its end: tracing the train step and
    running the first execution)] in seconds, for each trial's configuration, with the steps_per_execution its job
    ran (so the first batch is the same work), seeded and deterministic as a kerasd job with a seed is."""
    import keras
    import tensorflow as tf

    class FirstBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self.begin = getattr(self, "begin", time.perf_counter())

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.end = time.perf_counter()
            self.model.stop_training = True

    found = []
    for filters, learning_rate, batch_size, steps in configs:
        keras.utils.set_random_seed(1)
        tf.config.experimental.enable_op_determinism()
        started = time.perf_counter()
        model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(filters, 3, activation="relu"),
                keras.layers.Flatten(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=steps,
        )
        compiled = time.perf_counter()
        first = FirstBatch()
        model.fit(data["train_x"], data["train_y"], batch_size=batch_size, epochs=1, callbacks=[first], verbose=0)
        found.append([compiled - started, first.begin - compiled, first.end - first.begin])
    return found[1:]  # the first pays the process's one-time warm-up, which a worker paid before its first job


def show_keras(found: list[list[float]]) -> None:
    print(
        f"plain Keras in one warm process, {len(found)} trials' configurations: build + compile "
        f"{ms([item[0] for item in found])}; fit's call to the first batch's begin {ms([item[1] for item in found])}; "
        f"the first step (the first batch's begin to its end) {ms([item[2] for item in found])}; build to the "
        f"first batch's end {ms([sum(item) for item in found])}"
    )


def epochs_of(http: httpx.Client, sweep: dict[str, Any]) -> int:
    return sum(len(http.get(f"/v1/jobs/{t['job_id']}").json()["history"].get("loss", [])) for t in sweep["trials"])


def overhead_grids(
    http: httpx.Client, common: dict[str, Any], *, trials: int, concurrent: list[int]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The grid's first `trials` points, once for each number of trials at once: with as many as the workers, the
    next trial is made by the step after a trial's end; with more, it waits in the queue before that end."""
    found = []
    for at_once in concurrent:
        started = time.monotonic()
        grid = run_sweep(
            http,
            {
                **common,
                "name": f"grid {at_once} at once",
                "algorithm": "grid",
                "budget": {"max_trials": trials, "max_concurrent": at_once},
            },
        )
        print(
            f"grid, {at_once} trial(s) at once: {len(grid['trials'])} trials ({grid['counts']}), "
            f"{time.monotonic() - started:.0f} s"
        )
        found.append((f"{at_once} trial(s) at once on 2 workers", [grid]))
    return found


def grid_and_asha(http: httpx.Client, common: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    started = time.monotonic()
    grid = run_sweep(
        http, {**common, "name": "grid", "algorithm": "grid", "budget": {"max_trials": 27, "max_concurrent": 2}}
    )
    grid_s = time.monotonic() - started
    started = time.monotonic()
    asha = run_sweep(
        http,
        {
            **common,
            "name": "asha",
            "algorithm": "random",
            "seed": 3,
            "budget": {"max_trials": 27, "max_concurrent": 2},
            "early_stopping": {"rule": "successive_halving", "min_epochs": 1, "reduction_factor": 3},
        },
    )
    asha_s = time.monotonic() - started
    grid_epochs, asha_epochs = epochs_of(http, grid), epochs_of(http, asha)
    print(
        f"grid: {len(grid['trials'])} trials, best val_accuracy {grid['best']['objective']:.4f}, "
        f"{grid_epochs} epochs, {grid_s:.0f} s"
    )
    print(
        f"ASHA: {len(asha['trials'])} trials ({asha['counts']}), best val_accuracy "
        f"{asha['best']['objective']:.4f}, {asha_epochs} epochs = {asha_epochs / grid_epochs:.0%} of the "
        f"grid's, {asha_s:.0f} s"
    )
    return [("the grid and ASHA, 2 trials at once on 2 workers", [grid, asha])]


def tiny_trials(http: httpx.Client, count: int) -> None:
    tiny_data = upload(
        http,
        "tiny.npz",
        npz_bytes(
            train_x=np.random.default_rng(1).random((256, 8), dtype="float32"),
            train_y=np.eye(4, dtype="float32")[np.random.default_rng(2).integers(0, 4, 256)],
            val_x=np.random.default_rng(3).random((64, 8), dtype="float32"),
            val_y=np.eye(4, dtype="float32")[np.random.default_rng(4).integers(0, 4, 64)],
        ),
    ).json()["id"]
    tiny = http.post("/v1/models", json=TINY).json()["id"]
    created = time.time()
    many = run_sweep(
        http,
        {
            "name": "tiny",
            "job": fit_job(tiny, tiny_data, 1, batch_size=64),
            "objective": {"metric": "val_loss"},
            "algorithm": "random",
            "seed": 1,
            "space": {"compile.optimizer.config.learning_rate": {"log_uniform": [1e-4, 1e-1]}},
            "budget": {"max_trials": count, "max_concurrent": 4},
        },
    )
    jobs = [http.get(f"/v1/jobs/{t['job_id']}").json() for t in many["trials"]]
    own = sum(stamp(job["finished_at"]) - stamp(job["started_at"]) for job in jobs)
    wall = max(stamp(job["finished_at"]) for job in jobs) - created
    print(
        f"{len(jobs)} one-epoch trials on 2 workers ({many['counts']}): wall {wall:.1f} s, trials' own time "
        f"/ 2 = {own / 2:.1f} s, ratio {wall / (own / 2):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--tiny-trials", type=int, default=200)
    parser.add_argument("--grid-only", action="store_true", help="the grid, ASHA and the overhead, not the tiny trials")
    parser.add_argument(
        "--overhead-only", action="store_true", help="the grid's trials alone (once per --concurrent), for the overhead"
    )
    parser.add_argument("--trials", type=int, default=27, help="with --overhead-only: the grid's first N points")
    parser.add_argument(
        "--concurrent", default="2,3", help="with --overhead-only: the trials at once of each grid run, comma-separated"
    )
    args = parser.parse_args()
    data = digits()
    with scratch_database() as url, tempfile.TemporaryDirectory() as scratch:
        logs = Path(scratch)
        env = server_env(url, logs / "data", KERASD_CHECKPOINT_EVERY_EPOCHS="0")
        (logs / "w1").mkdir()
        (logs / "w2").mkdir()
        with (
            worker_process(env, logs / "w1"),
            worker_process(env, logs / "w2"),
            api_process(env, logs) as (_api, base),
            httpx.Client(base_url=base, timeout=300) as http,
        ):
            dataset = upload(http, "digits.npz", npz_bytes(**data)).json()["id"]
            cnn = http.post("/v1/models", json=CNN).json()["id"]
            common = {
                "objective": {"metric": "val_accuracy", "direction": "maximize"},
                "space": SPACE,
                "job": fit_job(cnn, dataset, args.epochs),
            }
            if args.overhead_only:
                concurrent = [int(value) for value in args.concurrent.split(",")]
                runs = overhead_grids(http, common, trials=args.trials, concurrent=concurrent)
            else:
                runs = grid_and_asha(http, common)
            lines = worker_lines([logs / "w1", logs / "w2"])
            for title, sweeps in runs:
                show_gaps(title, gaps(http, sweeps, lines), lines)
            configs = trial_configs(http, runs[0][1][0])
            if not (args.grid_only or args.overhead_only):
                tiny_trials(http, args.tiny_trials)
    # With the workers stopped: the grid's trials' start in plain Keras, in one process.
    show_keras(keras_first_batches(data, configs))


if __name__ == "__main__":
    main()
