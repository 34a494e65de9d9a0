"""The reaper (DESIGN.md §7): jobs whose worker stopped renewing the lease go back to the queue (and, each round, the
sweeps move on: workers/sweeps.py).

Every worker runs one in a thread; any of them may find an expired lease, and the guarded UPDATE lets
exactly one of them act on it. A job that has used up its attempts ends `failed` instead: a job that
keeps killing its worker must not take the fleet down with it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from app.core.blob_gc import collect_blobs
from app.core.database import session_scope
from app.core.repositories import jobs
from app.core.settings import get_settings
from app.core.sql import ask
from app.core.tables import utcnow
from app.core.webhooks import record_job_end

log = logging.getLogger("kerasd.reaper")


def reap_expired(*, requeue: Callable[[Any], None]) -> list[tuple[str, str]]:
    """Requeue or fail each running job whose lease has expired; (job id, new status) for each. `requeue` gets
    each requeued job's row (id, request) after the commit."""
    now = utcnow()
    changed: list[tuple[str, str]] = []
    requeued: list[Any] = []
    with session_scope() as session:
        for job in ask(session, jobs.expired_leases(now=now)):
            if job.attempt >= job.max_attempts:
                error = {"type": "WorkerLost",
                         "message": f"the job's worker stopped answering on each of its {job.attempt} attempt(s) "
                                    f"(max_attempts={job.max_attempts}); it may be killing its worker (memory?)"}
                if jobs.fail_lost(session, job_id=job.id, attempt=job.attempt, now=now, error=error):
                    record_job_end(session, job_id=job.id, status="failed", public_url=get_settings().public_url)
                    changed.append((job.id, "failed"))
            else:
                row = jobs.requeue_lost(session, job_id=job.id, attempt=job.attempt, now=now)
                if row is not None:
                    changed.append((job.id, "queued"))
                    requeued.append(row)
    # After the commit, as for any new job: a worker may take it at once.
    for job in requeued:
        requeue(job)
    for job_id, status in changed:
        log.warning("job %s lost its worker: %s", job_id, "requeued" if status == "queued" else "failed")
    return changed


class Reaper:
    """Reaps expired leases every `interval_s`; every `gc_interval_s` (0: never) also collects unreferenced blobs."""

    def __init__(self, *, interval_s: float, requeue: Callable[[Any], None], gc_interval_s: float = 0.0,
                 gc_grace_s: float = 3600.0, each_round: Callable[[], None] | None = None) -> None:
        self._interval_s = interval_s
        self._requeue = requeue
        # Run after the reaping of each round (the sweeps' scheduler step: a trial it failed moves its sweep on).
        self._each_round = each_round
        self._gc_interval_s = gc_interval_s
        self._gc_grace_s = gc_grace_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Workers started together should not all collect at once: the first round comes at a random time.
        next_gc = time.monotonic() + random.uniform(0, self._gc_interval_s)
        while not self._stop.wait(self._interval_s):
            try:
                reap_expired(requeue=self._requeue)
            except Exception:  # the database may be away for a moment; the next round tries again
                log.exception("reaper round failed")
            if self._each_round is not None:
                try:
                    self._each_round()
                except Exception:
                    log.exception("reaper round's step failed")
            if self._gc_interval_s > 0 and time.monotonic() >= next_gc:
                next_gc = time.monotonic() + self._gc_interval_s
                try:
                    collect_blobs(grace_s=self._gc_grace_s)
                except Exception:
                    log.exception("blob collection failed")

    def stop(self) -> None:
        self._stop.set()
