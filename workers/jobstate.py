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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.core.blobs import store_file
from app.core.database import session_scope
from app.core.tables import Artifact, EpochLog, Job, JobCheckpoint, ModelSpec, utcnow

log = logging.getLogger("kerasd.worker")
T = TypeVar("T")


class StaleAttempt(RuntimeError):
    """This attempt no longer owns the job; stop without writing."""


def retrying(fn: Callable[..., T], *, within_s: float = 60.0) -> Callable[..., T]:
    """`fn`, tried again while the database is briefly away (a restart, a failover) instead of failing the
    attempt; past `within_s` the error stands and the lease runs out, and the reaper takes over."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + within_s
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


def claimable(now: datetime):
    """A queued job, or a running one whose lease expired (a redelivered message after a crash), with
    attempts left."""
    return (((Job.status == "queued") | ((Job.status == "running") & (Job.lease_expires_at < now)))
            & (Job.attempt < Job.max_attempts))


def take(session: Session, *, job_id: str, owner: str, lease_s: int, now: datetime) -> int | None:
    """The claim's guarded UPDATE in the caller's transaction (the fair scheduler, workers/scheduling.py,
    runs it under its tenant lock); the new attempt number, or None if the job is not claimable."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, claimable(now))
        .values(status="running", attempt=Job.attempt + 1, lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s), started_at=now)
    )
    if result.rowcount != 1:
        return None
    return session.scalar(select(Job.attempt).where(Job.id == job_id))


@retrying
def claim(*, job_id: str, owner: str, lease_s: int) -> int | None:
    """Take a queued job (or a running one whose lease expired); the new attempt number, or None."""
    now = utcnow()
    with session_scope() as session:
        return take(session, job_id=job_id, owner=owner, lease_s=lease_s, now=now)


def _fence(session: Session, job_id: str, attempt: int, lease_s: int) -> None:
    """Renew the lease if this attempt still owns the running job; otherwise StaleAttempt.

    The UPDATE also takes the row's lock, so nothing else changes the job until this transaction ends.
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    )
    if result.rowcount != 1:
        raise StaleAttempt(f"job {job_id} attempt {attempt} no longer owns the job")


def renew_lease(*, job_id: str, attempt: int, lease_s: int) -> bool:
    """Renew the lease; True when a cancel has been requested meanwhile."""
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        return session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None


@retrying
def record_epoch(*, job_id: str, attempt: int, epoch: int, logs: dict[str, float], lease_s: int) -> None:
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        session.merge(EpochLog(job_id=job_id, epoch=epoch, attempt=attempt, logs=logs))


@retrying
def save_checkpoint(*, job_id: str, attempt: int, epoch: int, path: Path, rng: dict[str, Any], lease_s: int,
                    chunk_bytes: int) -> None:
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        with path.open("rb") as fileobj:
            blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
        session.merge(JobCheckpoint(job_id=job_id, epoch=epoch, attempt=attempt, blob_sha256=blob.sha256,
                                    rng_state=rng, created_at=utcnow()))


def latest_checkpoint(*, job_id: str) -> JobCheckpoint | None:
    with session_scope() as session:
        return session.get(JobCheckpoint, job_id)


def recorded_epochs(*, job_id: str) -> list[tuple[int, dict[str, Any]]]:
    with session_scope() as session:
        rows = session.scalars(select(EpochLog).where(EpochLog.job_id == job_id).order_by(EpochLog.epoch))
        return [(row.epoch, row.logs) for row in rows]


def load_job(*, job_id: str) -> tuple[Job, dict[str, Any]]:
    """The job row and its model's canonical Keras config."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        model = session.get(ModelSpec, job.model_id)
        return job, model.keras_config


@retrying
def end(*, job_id: str, attempt: int, status: str, lease_s: int, chunk_bytes: int,
        result: dict[str, Any] | None = None, error: dict[str, str] | None = None,
        artifacts: list[tuple[str, Path, str]] = ()) -> None:
    """Store the artifacts and end the job in `status`, all in one transaction or not at all."""
    with session_scope() as session:
        _fence(session, job_id, attempt, lease_s)
        for name, path, media_type in artifacts:
            with path.open("rb") as fileobj:
                blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
            session.merge(Artifact(job_id=job_id, name=name, blob_sha256=blob.sha256, size_bytes=blob.size_bytes,
                                   media_type=media_type))
        job = session.get(Job, job_id)
        job.status, job.result, job.error = status, result, error
        job.finished_at, job.lease_expires_at = utcnow(), None
