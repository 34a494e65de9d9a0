"""A job's life in SQL as the worker sees it: claim, lease, epochs, and the end, every write fenced.

Each claim bumps the job's attempt number. Every later write names the attempt it belongs to and changes
nothing if the job has moved on (another attempt claimed it, or it ended): a stale attempt can write
nothing (DESIGN.md §7).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.core.blobs import store_file
from app.core.database import session_scope
from app.core.repositories import exports, jobs
from app.core.settings import get_settings
from app.core.sql import ask
from app.core.tables import utcnow
from app.core.webhooks import record_job_end

log = logging.getLogger("kerasd.worker")
T = TypeVar("T")


class StaleAttempt(RuntimeError):
    """This attempt no longer owns the job; stop without writing."""


def retrying(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, tried again while the database is briefly away (a restart, a failover) or busy ("database is
    locked": SQLite's one writer held longer than its busy timeout) instead of failing the attempt; past
    KERASD_WORKER_DB_RETRY_S the error stands and the lease runs out, and the reaper takes over."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + get_settings().worker_db_retry_s
        delay = 0.2
        while True:
            try:
                return fn(*args, **kwargs)
            except (OperationalError, InterfaceError):
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("database unavailable during %s; retrying in %.1f s", fn.__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper


def take(session: Session, *, job_id: str, owner: str, lease_s: int, now: datetime) -> int | None:
    """The claim's guarded UPDATE in the caller's transaction (the fair scheduler, workers/scheduling.py,
    runs it under its tenant lock); the new attempt number, or None if the job is not claimable."""
    return jobs.take(session, job_id=job_id, owner=owner, lease_s=lease_s, now=now)


@retrying
def claim(*, job_id: str, owner: str, lease_s: int) -> int | None:
    """Take a queued job (or a running one whose lease expired); the new attempt number, or None."""
    now = utcnow()
    with session_scope() as session:
        return take(session, job_id=job_id, owner=owner, lease_s=lease_s, now=now)


def _fence(session: Session, job_id: str, attempt: int, lease_s: int) -> bool:
    """Renew the lease if this attempt still owns the running job, else StaleAttempt; whether a cancel has been
    requested. The UPDATE also takes the row's lock, so nothing else changes the job until this transaction ends.
    """
    owned, cancel = jobs.renew_lease(session, job_id=job_id, attempt=attempt, lease_s=lease_s)
    if not owned:
        raise StaleAttempt(f"job {job_id} attempt {attempt} no longer owns the job")
    return cancel


def renew_lease(*, job_id: str, attempt: int, lease_s: int) -> bool:
    """Renew the lease; True when a cancel has been requested meanwhile."""
    with session_scope() as session:
        return _fence(session, job_id, attempt, lease_s)


@retrying
def record_epoch(*, job_id: str, attempt: int, epoch: int, logs: dict[str, float], lease_s: int) -> None:
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        jobs.record_epoch(session, job_id=job_id, epoch=epoch, attempt=attempt, logs=logs)


@retrying
def save_checkpoint(*, job_id: str, attempt: int, epoch: int, path: Path, rng: dict[str, Any], lease_s: int,
                    chunk_bytes: int) -> None:
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        with path.open("rb") as fileobj:
            blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
        jobs.save_checkpoint(session, job_id=job_id, epoch=epoch, attempt=attempt, blob_sha256=blob.sha256,
                             rng_state=rng)


@retrying
def latest_checkpoint(*, job_id: str) -> Any:
    """The job's checkpoint (epoch, attempt, blob_sha256, rng_state), or None."""
    with session_scope() as session:
        return ask(session, jobs.latest_checkpoint(job_id=job_id))


@retrying
def recorded_epochs(*, job_id: str) -> list[tuple[int, dict[str, Any]]]:
    with session_scope() as session:
        return ask(session, jobs.recorded_epochs(job_id=job_id))


@retrying
def load_job(*, job_id: str) -> tuple[Any, dict[str, Any]]:
    """The job's row and its model's canonical Keras config."""
    with session_scope() as session:
        row = ask(session, jobs.job_and_model(job_id=job_id))
        return row, row.keras_config


@retrying
def end(*, job_id: str, attempt: int, status: str, lease_s: int, chunk_bytes: int, public_url: str = "",
        result: dict[str, Any] | None = None, error: dict[str, str] | None = None,
        artifacts: list[tuple[str, Path, str]] = ()) -> int:
    """Store the artifacts, end the job in `status` and store its webhook deliveries (the outbox), all in one
    transaction or not at all; the number of deliveries stored."""
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        for name, path, media_type in artifacts:
            with path.open("rb") as fileobj:
                blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
            jobs.store_artifact(session, job_id=job_id, name=name, blob_sha256=blob.sha256,
                                size_bytes=blob.size_bytes, media_type=media_type)
        jobs.end_job(session, job_id=job_id, status=status, result=result, error=error)
        if status == "succeeded" and ((result or {}).get("export") or {}).get("status") == "verified":
            exports.keep_verified_export(session, job_id=job_id)
        return record_job_end(session, job_id=job_id, status=status, public_url=public_url)
