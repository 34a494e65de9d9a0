"""Where a job's start goes, from its turn to the call of fit, as one line of the worker's log."""

from __future__ import annotations

import logging
import time

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
