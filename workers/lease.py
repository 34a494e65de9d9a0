"""Keeps a running job's claim alive: renews its lease in SQL and notices a cancel request or a lost attempt."""

from __future__ import annotations

import logging
import threading

from workers import jobstate

log = logging.getLogger("kerasd.worker")


class LeaseKeeper:
    """Renews the job's lease in SQL while it runs; notices a cancel request and a lost attempt."""

    def __init__(self, *, job_id: str, attempt: int, lease_s: int, cancel: threading.Event) -> None:
        self._args = {"job_id": job_id, "attempt": attempt, "lease_s": lease_s}
        self._cancel = cancel
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._args["lease_s"] / 3):
            try:
                if jobstate.renew_lease(**self._args):
                    self._cancel.set()
            except jobstate.StaleAttempt:
                self.lost.set()
                return
            except Exception:  # a database hiccup: try again next period, the lease has slack
                log.exception("lease renewal failed for job %s", self._args["job_id"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
