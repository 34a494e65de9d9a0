"""What live progress costs training: plain `model.fit` against the worker's fit with progress, in one run.

The worker's progress path is the real one: `workers.progress.ProgressCallback` (batch events throttled
to `--interval` seconds, an epoch event every epoch) feeding an `EventPublisher` whose thread XADDs to
a real Redis Stream. The model is the MLP 72→256→256→10 over 200,000 rows at batch size 128 (Adam,
categorical cross-entropy, categorical accuracy). Each arm keeps one model, warmed by one untimed epoch
(tracing), then the arms alternate A B B A ... so drift on a shared machine hits both alike. A fit's
speed is rows x epochs / the summed wall time of its epochs; the report gives the median over the runs,
their range, the ratio of medians and the median of each run's paired ratio (the two arms' fits of one
run are seconds apart, so that one is robust to load changing on a shared machine), and how often batch
events arrived in Redis during training.

With `--naive` a third arm shows what one synchronous XADD per batch costs.

    .venv/bin/python bench/progress_overhead.py            # needs Redis at KERASD_REDIS_URL
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import redis

from app.core import events
from app.core.settings import get_settings
from workers.progress import EventPublisher, ProgressCallback


class EpochTimer(keras.callbacks.Callback):
    """Wall and CPU time of each epoch; only epoch hooks, so it adds nothing per batch. Both arms carry it.

    CPU time is the whole process's (every thread: TensorFlow's and the publisher's), so it counts what
    progress costs even when other work on the machine makes wall time noisy.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._started = self._cpu_started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started, self._cpu_started = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.cpu_seconds.append(time.process_time() - self._cpu_started)


class NaiveProgress(keras.callbacks.Callback):
    """The thing not to do: one synchronous XADD per batch, on the training thread."""

    def __init__(self, client: redis.Redis, job_id: str) -> None:
        super().__init__()
        self._client, self._key = client, events.stream_key(job_id)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._client.xadd(self._key, events.encode("naive", "batch", {"step": batch + 1, "logs": logs or {}}),
                          maxlen=10_000, approximate=True)


def make_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((72,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                  metrics=["categorical_accuracy"])
    return model


def timed_fit(model: keras.Model, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
              extra: list[keras.callbacks.Callback]) -> tuple[float, float]:
    """Rows per second and rows per CPU-second of one `model.fit` (the worker passes verbose=0 too)."""
    timer = EpochTimer()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[timer, *extra])
    return len(x) * epochs / sum(timer.seconds), len(x) * epochs / sum(timer.cpu_seconds)


def batch_event_stats(client: redis.Redis, job_id: str) -> dict[str, float]:
    found = [events.decode(i, f) for i, f in client.xrange(events.stream_key(job_id))]
    client.delete(events.stream_key(job_id))
    stamps = [datetime.fromisoformat(e["ts"]).timestamp() for e in found if e["type"] == "batch"]
    gaps = np.diff(stamps)
    # Epoch boundaries (validation-free here) are within the gaps: no gap should exceed ~interval.
    return {"batch_events": len(stamps), "per_s": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
            "max_gap_s": float(gaps.max()), "epoch_events": sum(e["type"] == "epoch" for e in found)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per fit")
    parser.add_argument("--runs", type=int, default=11, help="timed fits per arm")
    parser.add_argument("--interval", type=float, default=get_settings().batch_event_interval_s,
                        help="seconds between batch events (KERASD_BATCH_EVENT_INTERVAL_S)")
    parser.add_argument("--redis-url", default=get_settings().redis_url)
    parser.add_argument("--naive", action="store_true", help="also time one synchronous XADD per batch")
    parser.add_argument("--json", action="store_true", help="print the result as JSON as well")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    rng = np.random.default_rng(0)
    x = rng.random((args.rows, 72), dtype="float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, args.rows)]

    def progress_arm(model: keras.Model) -> tuple[tuple[float, float], dict[str, float]]:
        job_id = f"bench-{uuid.uuid4().hex}"
        publisher = EventPublisher(client, job_id=job_id, attempt=1, maxlen=10_000, ttl_s=600)
        callback = ProgressCallback(publisher, on_epoch=lambda epoch, logs: None,
                                    batch_interval_s=args.interval, batch_size=args.batch_size)
        try:
            speed = timed_fit(model, x, y, epochs=args.epochs, batch_size=args.batch_size, extra=[callback])
        finally:
            publisher.close()
        return speed, batch_event_stats(client, job_id)

    def naive_arm(model: keras.Model) -> tuple[tuple[float, float], None]:
        job_id = f"bench-{uuid.uuid4().hex}"
        speed = timed_fit(model, x, y, epochs=args.epochs, batch_size=args.batch_size,
                          extra=[NaiveProgress(client, job_id)])
        client.delete(events.stream_key(job_id))
        return speed, None

    def plain_arm(model: keras.Model) -> tuple[tuple[float, float], None]:
        return timed_fit(model, x, y, epochs=args.epochs, batch_size=args.batch_size, extra=[]), None

    arms = {"plain Keras": plain_arm, "worker with live progress": progress_arm}
    if args.naive:
        arms["one XADD per batch"] = naive_arm
    models = {name: make_model(seed=1) for name in arms}
    for model in models.values():  # tracing and first-epoch costs, untimed
        model.fit(x[: args.batch_size * 50], y[: args.batch_size * 50], epochs=1, batch_size=args.batch_size,
                  verbose=0)

    speeds: dict[str, list[float]] = {name: [] for name in arms}
    cpu_speeds: dict[str, list[float]] = {name: [] for name in arms}
    streams: list[dict[str, float]] = []
    names = list(arms)
    for run in range(args.runs):
        for name in names if run % 2 == 0 else reversed(names):
            (speed, cpu_speed), stats = arms[name](models[name])
            speeds[name].append(speed)
            cpu_speeds[name].append(cpu_speed)
            if stats:
                streams.append(stats)
            print(f"run {run + 1}/{args.runs}  {name:<26} {speed:>9,.0f} rows/s  {cpu_speed:>9,.0f} rows/CPU-s",
                  flush=True)

    base = statistics.median(speeds["plain Keras"])
    print(f"\nMLP 72-256-256-10, {args.rows:,} rows, batch {args.batch_size}, {args.epochs} timed epochs per fit, "
          f"{args.runs} fits per arm, batch events every {args.interval} s, Keras {keras.__version__} "
          f"({keras.backend.backend()}), {os.cpu_count()} CPUs")
    print(f"{'arm':<26} {'median rows/s':>14} {'range':>22} {'vs plain':>9} {'paired':>8}")
    result: dict[str, Any] = {"rows": args.rows, "batch_size": args.batch_size, "runs": args.runs, "arms": {}}
    for name, values in speeds.items():
        median = statistics.median(values)
        paired = sorted(v / p for v, p in zip(values, speeds["plain Keras"], strict=True))
        print(f"{name:<26} {median:>14,.0f} {min(values):>10,.0f} - {max(values):>9,.0f} {median / base:>8.3f}x "
              f"{statistics.median(paired):>7.3f}x  (paired {paired[0]:.3f}-{paired[-1]:.3f})")
        result["arms"][name] = {"median": median, "min": min(values), "max": max(values), "ratio": median / base,
                                "paired_ratio_median": statistics.median(paired),
                                "paired_ratio_min": paired[0], "paired_ratio_max": paired[-1]}
    cpu_base = statistics.median(cpu_speeds["plain Keras"])
    print(f"\n{'arm':<26} {'rows/CPU-second':>16} {'range':>22} {'vs plain':>9}")
    for name, values in cpu_speeds.items():
        median = statistics.median(values)
        print(f"{name:<26} {median:>16,.0f} {min(values):>10,.0f} - {max(values):>9,.0f} {median / cpu_base:>8.3f}x")
        result["arms"][name].update(cpu_median=median, cpu_min=min(values), cpu_max=max(values),
                                    cpu_ratio=median / cpu_base)
    # What the hook costs in isolation: the same calls Keras makes, without training around them.
    job_id = f"bench-{uuid.uuid4().hex}"
    publisher = EventPublisher(client, job_id=job_id, attempt=1, maxlen=10_000, ttl_s=600)
    hook = ProgressCallback(publisher, on_epoch=lambda epoch, logs: None, batch_interval_s=args.interval,
                            batch_size=args.batch_size)
    hook.set_params({"epochs": 1, "steps": 1563, "verbose": 0})
    hook.on_epoch_begin(0)
    logs = {"categorical_accuracy": 0.1, "loss": 2.3}
    calls = 200_000
    started = time.perf_counter()
    for step in range(calls):
        hook.on_train_batch_end(step, logs)
    per_call = (time.perf_counter() - started) / calls
    publisher.close()
    client.delete(events.stream_key(job_id))
    batch_seconds = args.batch_size / base
    print(f"\nProgressCallback.on_train_batch_end: {per_call * 1e9:,.0f} ns a call, "
          f"{per_call / batch_seconds:.4%} of a plain-Keras batch ({batch_seconds * 1e3:.2f} ms)")
    result["hook_ns_per_call"] = per_call * 1e9
    rates = [s["per_s"] for s in streams]
    print(f"batch events in Redis during training: {statistics.median(rates):.2f}/s median "
          f"({min(rates):.2f}-{max(rates):.2f}), longest gap {max(s['max_gap_s'] for s in streams):.2f} s, "
          f"{sum(s['epoch_events'] for s in streams)} epoch events of {args.epochs * args.runs}")
    result["batch_events_per_s"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
