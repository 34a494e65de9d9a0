"""Runs one job from its id: claim it, train, store the outcome, publish progress. No Celery here."""

from __future__ import annotations

import logging
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

import redis

from app.settings import Settings
from workers import jobstate, training
from workers.array_cache import ArrayCache
from workers.progress import EventPublisher, ProgressCallback

log = logging.getLogger("kerasd.worker")


class LeaseKeeper:
    """Renews the job's lease in SQL while it runs; notices when the attempt has been fenced off."""

    def __init__(self, *, job_id: str, attempt: int, lease_s: int) -> None:
        self._args = {"job_id": job_id, "attempt": attempt, "lease_s": lease_s}
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._args["lease_s"] / 3):
            try:
                jobstate.renew_lease(**self._args)
            except jobstate.StaleAttempt:
                self.lost.set()
                return
            except Exception:  # a database hiccup: try again next period, the lease has slack
                log.exception("lease renewal failed for job %s", self._args["job_id"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def error_of(exc: BaseException) -> dict[str, str]:
    """What a user reads when the job fails: Keras's own exception type and message."""
    message = str(exc).strip() or traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {"type": type(exc).__name__, "message": message[:4000]}


def run_job(job_id: str, *, settings: Settings, redis_client: redis.Redis, cache: ArrayCache, owner: str) -> str:
    """Run the job if this worker can claim it; returns the status it ended in (or 'skipped')."""
    attempt = jobstate.claim(job_id=job_id, owner=owner, lease_s=settings.lease_seconds)
    if attempt is None:
        log.info("job %s is not claimable (finished, cancelled, or another worker has it)", job_id)
        return "skipped"
    publisher = EventPublisher(redis_client, job_id=job_id, attempt=attempt, maxlen=settings.event_stream_maxlen,
                               ttl_s=settings.event_stream_ttl_s)
    lease = LeaseKeeper(job_id=job_id, attempt=attempt, lease_s=settings.lease_seconds)
    fenced: dict[str, Any] = {"job_id": job_id, "attempt": attempt, "lease_s": settings.lease_seconds}
    try:
        publisher.publish("started", {"attempt": attempt, "worker": owner})
        job, keras_config = jobstate.load_job(job_id=job_id)
        request = job.request
        arrays = {role: cache.array(ref) for role, ref in request["arrays"].items()}
        progress = ProgressCallback(
            publisher, batch_interval_s=settings.batch_event_interval_s,
            on_epoch=lambda epoch, logs: jobstate.record_epoch(epoch=epoch, logs=logs, **fenced),
        )
        model, history = training.fit_model(keras_config=keras_config, compile_spec=request["compile"],
                                            fit_spec=request["fit"], arrays=arrays, callbacks=[progress],
                                            seed=request.get("seed"))
        with tempfile.TemporaryDirectory(prefix=f"kerasd-{job_id}-") as workdir:
            artifacts = training.export_artifacts(model, Path(workdir))
            result = {"history": history, "epochs_run": len(next(iter(history.values()), []))}
            jobstate.succeed(result=result, artifacts=artifacts, chunk_bytes=settings.chunk_bytes, **fenced)
        publisher.publish("finished", {"status": "succeeded", "history": history,
                                       "artifacts": [name for name, _, _ in artifacts]})
        return "succeeded"
    except jobstate.StaleAttempt:
        log.warning("job %s attempt %d was fenced off; its results are dropped", job_id, attempt)
        return "stale"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        error = error_of(exc)
        try:
            jobstate.fail(error=error, **fenced)
        except jobstate.StaleAttempt:
            return "stale"
        publisher.publish("failed", {"status": "failed", "error": error})
        return "failed"
    finally:
        lease.stop()
        publisher.close()
