"""Where a job's start goes, from its turn to the call of fit and on to its first batch, in the worker's log."""

from __future__ import annotations

import logging
import time
from typing import Any

import keras

log = logging.getLogger("kerasd.worker")


class StartPhases:
    """Where a job's start goes, from its turn to the call of fit: one line in the worker's log, which
    bench/sweep.py reads to split the gap between a sweep's trials."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self._last) * 1e3
        self._last = now

    def log(self, job_id: str) -> None:
        log.info("job %s ready to fit: %s", job_id, " ".join(f"{name}={ms:.0f}ms" for name, ms in self.ms.items()))

    def first_batch_clock(self, job_id: str) -> FirstBatchClock:
        return FirstBatchClock(job_id)


class FirstBatchClock(keras.callbacks.Callback):
    """When Keras begins the fit's first batch (all of the worker's own start is done by then) and when that batch
    (its first execution: Keras traces the train step) ends, as one line of the worker's log with the wall-clock
    times, which bench/sweep.py sets against the previous trial's end. First among the fit's callbacks, so the
    begin is Keras's and not another callback's."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self._fit: float | None = None
        self._begun: float | None = None
        self._logged = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._fit = time.time()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._begun is None:
            self._begun = time.time()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._logged or self._begun is None or self._fit is None:
            return
        self._logged = True
        ended = time.time()
        log.info(
            "job %s first batch: began %.0f ms after fit's start, its step took %.0f ms (begin=%.3f end=%.3f)",
            self.job_id,
            (self._begun - self._fit) * 1e3,
            (ended - self._begun) * 1e3,
            self._begun,
            ended,
        )
