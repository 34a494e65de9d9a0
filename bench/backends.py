"""Training throughput through kerasd on each installed Keras backend against plain `model.fit` on the same
backend, in one run: the MLP and the small CNN of bench/throughput.py, through kerasd tuned (the default) and untuned.

For each backend installed here (tensorflow, jax, torch: whichever import), a worker started on it
(`kerasd worker --backend B`) trains the job naming `backend: B`, timed from POST /v1/jobs to the `finished` event
as the client receives it (pickup, the dataset from the worker's cache, build, compile, checkpoints, artifacts
included), once with execution tuning (the default) and once with `"tuning": false` (Keras's own settings); the
plain arm is `model.fit(x, y, epochs=E, verbose=0)` in a child process of its own with `KERAS_BACKEND=B` (a process
runs one backend), timed around build + compile + fit. Before the timed jobs, one untimed job per backend and model
warms its worker and its dataset cache. The three arms run interleaved, `--rounds` times (the order turned each
round); each arm's figure is its median over the rounds.

    .venv/bin/python bench/backends.py [--backends tensorflow,jax,torch] [--models mlp,cnn] [--epochs 3]
                                       [--rows-scale 1.0] [--rounds 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._child import child_json
from bench._harness import Process, api_process, kerasd_command, scratch_database, server_env
from bench._jobs import create_model, run_job, upload_arrays
from bench.throughput import MODELS, fit_arguments, job_request, plain_fit

BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def installed_backends() -> list[str]:
    return [name for name, package in BACKEND_PACKAGES.items() if importlib.util.find_spec(package) is not None]


def arrays(name: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    conf = MODELS[name]
    rows = max(256, int(conf["rows"] * scale))
    rng = np.random.default_rng(0)
    x = rng.random((rows, *conf["shape"]), dtype="float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, rows)]
    return x, y


def plain_child(name: str, epochs: int, scale: float) -> None:
    """In a child whose KERAS_BACKEND is set: one warm-up fit on a slice, then the timed one; prints JSON."""
    import keras

    conf = MODELS[name]
    x, y = arrays(name, scale)
    plain_fit(conf["spec"], x[:1024], y[:1024], 1, conf["batch_size"])
    seconds, cpu = plain_fit(conf["spec"], x, y, epochs, conf["batch_size"])
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "rows": len(x) * epochs,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "devices": _devices(),
            }
        )
    )


def _devices() -> list[str]:
    """What the plain arm trained on, as its backend names it."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else ["cpu"]
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices()]


def plain_arm(backend: str, name: str, epochs: int, scale: float) -> dict[str, Any]:
    return child_json(
        [sys.executable, __file__, "--plain", name, "--epochs", str(epochs), "--rows-scale", str(scale)],
        {**os.environ, "KERAS_BACKEND": backend},
        f"plain fit on {backend}",
        timeout_s=3600,
    )


def kerasd_jobs(client: httpx.Client, backend: str, name: str, epochs: int, scale: float) -> dict[str, Any]:
    """The dataset and model uploaded, one untimed job run to warm the worker: the requests of the timed arms."""
    conf = MODELS[name]
    x, y = arrays(name, scale)
    dataset_id = upload_arrays(client, f"{name}.npz", x=x, y=y)
    model_id = create_model(client, conf["spec"])
    request = job_request(model_id, dataset_id, epochs, conf["batch_size"], tuning=True) | {"backend": backend}
    warm = run_job(client, {**request, "fit": {**request["fit"], **fit_arguments(conf["batch_size"], 1)}})
    assert warm.status == "succeeded", warm.job.get("error")
    return {"rows": len(x) * epochs, "kerasd": request, "kerasd_untuned": {**request, "tuning": False}}


def kerasd_arm(client: httpx.Client, request: dict[str, Any], rows: int) -> dict[str, Any]:
    job = run_job(client, request)
    assert job.status == "succeeded", job.job.get("error")
    return {
        "rows": rows,
        "seconds": job.seconds,
        "trained_with": job.job["result"]["trained_with"],
        "tuning": job.job["result"].get("tuning", {}),
    }


def compare(client: httpx.Client, backend: str, name: str, args: argparse.Namespace) -> str:
    """The three arms interleaved over the rounds; a line of their median rates."""
    jobs = kerasd_jobs(client, backend, name, args.epochs, args.rows_scale)
    runs: dict[str, list[dict[str, Any]]] = {"kerasd": [], "kerasd_untuned": [], "plain": []}
    for round_number in range(args.rounds):
        order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
        for arm in order:
            runs[arm].append(
                plain_arm(backend, name, args.epochs, args.rows_scale)
                if arm == "plain"
                else kerasd_arm(client, jobs[arm], jobs["rows"])
            )
    rate = {arm: statistics.median(run["rows"] / run["seconds"] for run in found) for arm, found in runs.items()}
    served, plain = runs["kerasd"][-1], runs["plain"][-1]
    return (
        f"{backend:>10} {name}: kerasd {rate['kerasd']:,.0f} rows/s, untuned {rate['kerasd_untuned']:,.0f}, "
        f"plain fit {rate['plain']:,.0f}; kerasd / plain {rate['kerasd'] / rate['plain']:.3f}, untuned / plain "
        f"{rate['kerasd_untuned'] / rate['plain']:.3f} (plain on {plain['devices']}; worker "
        f"{served['trained_with'].get('backend')} {served['trained_with'].get('backend_version')}; tuning "
        f"spe={served['tuning'].get('steps_per_execution')} jit={served['tuning'].get('jit_compile')})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(installed_backends()))
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows-scale", type=float, default=1.0, help="fraction of throughput.py's rows")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the three arms")
    parser.add_argument("--plain", default=None, help=argparse.SUPPRESS)  # the child of plain_arm
    args = parser.parse_args()
    if args.plain:
        plain_child(args.plain, args.epochs, args.rows_scale)
        return
    backends = [b for b in args.backends.split(",") if b]
    print(
        f"backends: {backends}; models: {args.models}; epochs {args.epochs}; rows x{args.rows_scale}; "
        f"rounds {args.rounds}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    lines = []
    with tempfile.TemporaryDirectory(prefix="kerasd-bench-") as tmp, scratch_database() as database_url:
        workdir = Path(tmp)
        env = server_env(database_url, workdir / "data", KERASD_DEFAULT_BACKEND=backends[0])
        with api_process(env, workdir) as (_api, base_url), httpx.Client(base_url=base_url, timeout=600) as client:
            for backend in backends:
                worker = Process(
                    kerasd_command(
                        "worker", "--backend", backend, "--name", f"bench-{backend}-{uuid.uuid4().hex[:6]}@%h"
                    ),
                    {**env, "KERAS_BACKEND": backend},
                    workdir / f"worker-{backend}.log",
                )
                try:
                    worker.wait_for_log(" ready.", timeout_s=300)
                    for name in args.models.split(","):
                        lines.append(compare(client, backend, name, args))
                        print(lines[-1], flush=True)
                finally:
                    worker.stop()
    print(f"\n== medians over {args.rounds} interleaved round(s), load at the end {os.getloadavg()[0]:.1f} ==")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
