"""The jobs tables as the API asks them: the job answer, and the API's writes (submit, cancel, retry, delete); the
lists (pages and counts) are in app/jobs/listing.py. What workers ask too (the claim, leases, epochs, the end) is
in app/core/repositories/jobs.py.

The job answer is one statement: the job, its epochs aggregated to one JSON array and its queue position, so
`GET /v1/jobs/{id}`, the answers of submit, cancel and retry, and every item of a page are built by the same
question (`job_document`, `job_page`), on a session or on the event loop (app/core/read_pool.py). In the
profile of bench/api_load.py the ORM's work (loading objects, a statement per part) was the API's largest CPU
share; these are plain SQL, built once per dialect and filter combination.

A queue position follows the scheduler's order (workers/scheduling.py): the tenant's queued jobs in the same
queue with a more urgent priority, then those of the same priority with a lower ticket. It is summed from the
blocks the database keeps (queue_blocks, migrations 0007: at most about a hundred rows) plus at most 31 jobs
counted through the partial index of queued jobs, so its cost does not grow with the queue.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import DateTime, bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from app.core.scope import ID, added, owned
from app.core.sql import Question, Statement, ask, one, scalar
from app.core.statuses import TERMINAL_STATUSES
from app.core.tables import Artifact, EpochLog, Job, utcnow
from app.jobs.answers import job_out, parse_json
from app.jobs.listing import DIALECT, POSITION, TYPES, columns, job_count, job_page, per_dialect

__all__ = ["job_count", "job_document", "job_page"]  # the lists' questions live in app/jobs/listing.py

JOBS, EPOCHS, ARTIFACTS = Job.__table__, EpochLog.__table__, Artifact.__table__

@functools.cache
def _document() -> Statement:
    def build(dialect: str) -> Any:
        return text(f"SELECT {columns(dialect)}, {DIALECT[dialect]['epochs']} AS epochs, "
                    f"{POSITION} FROM jobs WHERE jobs.id = :job_id AND jobs.tenant_id = :tenant_id"
                    ).columns(**TYPES)
    return per_dialect(build)


def job_document(*, tenant_id: str, job_id: str) -> Question[Any]:
    """The tenant's job as the API answers it (a JobOut), or None; another tenant's job is as missing as one that
    never was."""
    def shape(rows: list[Any]) -> Any:
        if not rows:
            return None
        row = rows[0]
        return job_out(row, request=parse_json(row.submitted) or {}, epochs=parse_json(row.epochs) or [],
                       queue_position=row.queue_position)
    if not ID.match(job_id):
        return Question(_document(), {"job_id": "-", "tenant_id": "-"}, lambda rows: None)
    return Question(_document(), {"job_id": job_id, "tenant_id": tenant_id}, shape)


# --- reads of one job and its outputs -------------------------------------------------------------------------

_STATE = Statement(select(JOBS.c.status, JOBS.c.attempt, JOBS.c.finished_at, JOBS.c.error, JOBS.c.result,
                          JOBS.c.request).where(JOBS.c.id == bindparam("job_id")))
_EPOCH_LOGS = Statement(select(EPOCHS.c.epoch, EPOCHS.c.logs).where(EPOCHS.c.job_id == bindparam("job_id"))
                        .order_by(EPOCHS.c.epoch))
_ARTIFACTS = Statement(select(ARTIFACTS).where(ARTIFACTS.c.job_id == bindparam("job_id")).order_by(ARTIFACTS.c.name))
_ARTIFACT = Statement(select(ARTIFACTS).where(ARTIFACTS.c.job_id == bindparam("job_id"),
                                              ARTIFACTS.c.name == bindparam("name")))
_OWNS = Statement(select(JOBS.c.id).where(JOBS.c.id == bindparam("job_id"), JOBS.c.tenant_id == bindparam("tenant_id")))
_ACTIVE = Statement(select(JOBS.c.id, JOBS.c.request).where(JOBS.c.tenant_id == bindparam("tenant_id"),
                                                            JOBS.c.status.in_(("queued", "running"))))
_OF_MODEL = Statement(text("SELECT count(*) FROM jobs WHERE model_id = :model_id"))


def get_job(session: Session, *, tenant_id: str, job_id: str) -> Job | None:
    return owned(session, Job, job_id, tenant_id)


def job_state(*, job_id: str) -> Question[Any]:
    """What the event stream needs of a job (status, attempt, finished_at, error, result, request), or None."""
    return Question(_STATE, {"job_id": job_id}, one)


def epoch_logs(*, job_id: str) -> Question[list[tuple[int, dict[str, Any]]]]:
    return Question(_EPOCH_LOGS, {"job_id": job_id}, lambda rows: [(row.epoch, row.logs) for row in rows])


def artifacts_of(*, job_id: str) -> Question[list[Any]]:
    """The job's artifact rows (name, blob_sha256, size_bytes, media_type), by name."""
    return Question(_ARTIFACTS, {"job_id": job_id})


def artifact(*, job_id: str, name: str) -> Question[Any]:
    return Question(_ARTIFACT, {"job_id": job_id, "name": name}, one)


def owns_job(*, job_id: str, tenant_id: str) -> Question[bool]:
    if not ID.match(job_id):
        return Question(_OWNS, {"job_id": "-", "tenant_id": "-"}, lambda rows: False)
    return Question(_OWNS, {"job_id": job_id, "tenant_id": tenant_id}, bool)


def active_requests(*, tenant_id: str) -> Question[list[Any]]:
    """The tenant's queued and running jobs: (id, request)."""
    return Question(_ACTIVE, {"tenant_id": tenant_id})


def jobs_of_model(*, model_id: str) -> Question[int]:
    return Question(_OF_MODEL, {"model_id": model_id}, scalar)


# --- the API's writes -----------------------------------------------------------------------------------------

_CANCEL_QUEUED = Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"), JOBS.c.status == "queued")
                           .values(status="cancelled", finished_at=bindparam("now"),
                                   cancel_requested_at=bindparam("now")).returning(JOBS.c.id))
_ENDED = ", ".join(f"'{status}'" for status in TERMINAL_STATUSES)
_ASK_CANCEL = Statement(text("UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, :now) "
                             f"WHERE id = :job_id AND status NOT IN ({_ENDED}) RETURNING id"
                             ).bindparams(bindparam("now", type_=DateTime(timezone=True))))
_REQUEUE = Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"))
                     .values(status="queued", error=None, result=None, finished_at=None, started_at=None,
                             cancel_requested_at=None, lease_expires_at=None, lease_owner=None,
                             max_attempts=JOBS.c.attempt + bindparam("more_attempts")))
_FAIL = Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"))
                  .values(status="failed", finished_at=bindparam("now"),
                          error=bindparam("failure", type_=JOBS.c.error.type)))
_CLEAR_ARTIFACTS = Statement(delete(ARTIFACTS).where(ARTIFACTS.c.job_id == bindparam("job_id")))
_CLEAR_EPOCHS = Statement(delete(EPOCHS).where(EPOCHS.c.job_id == bindparam("job_id")))
_CLEAR_METRICS = Statement(text("DELETE FROM job_metrics WHERE job_id = :job_id"))
_CLEAR_EXPERIMENT = (Statement(text("DELETE FROM job_tags WHERE job_id = :job_id")),
                     Statement(text("DELETE FROM job_params WHERE job_id = :job_id")))
_DELETE = Statement(delete(JOBS).where(JOBS.c.id == bindparam("job_id")))


def insert_job(session: Session, **values: Any) -> Job:
    """A new job row; the database gives it its queue ticket (migrations 0007)."""
    return added(session, Job(**values))


def cancel_queued(session: Session, *, job_id: str) -> bool:
    """Cancel the job at once if it is still queued; whether it was."""
    return bool(ask(session, Question(_CANCEL_QUEUED, {"job_id": job_id, "now": utcnow()})))


def ask_cancel(session: Session, *, job_id: str) -> bool:
    """Ask a job that has not ended to stop (the worker sees it); False if it has ended."""
    return bool(ask(session, Question(_ASK_CANCEL, {"job_id": job_id, "now": utcnow()})))


def requeue(session: Session, *, job: Job, more_attempts: int) -> None:
    """Queue an ended job again as a new attempt from the start (it takes a new ticket: the back of its lane)."""
    ask(session, Question(_REQUEUE, {"job_id": job.id, "more_attempts": more_attempts}))
    session.expire(job)


def fail(session: Session, *, job: Job, error: dict[str, str]) -> None:
    ask(session, Question(_FAIL, {"job_id": job.id, "now": utcnow(), "failure": error}))
    session.expire(job)


def clear_outputs(session: Session, *, job_id: str) -> None:
    """The job's artifacts, epochs and the metric summaries kept from them (their blobs stay: other rows may hold
    the same bytes)."""
    for statement in (_CLEAR_ARTIFACTS, _CLEAR_EPOCHS, _CLEAR_METRICS):
        ask(session, Question(statement, {"job_id": job_id}))


def delete_job(session: Session, *, job: Job) -> None:
    clear_outputs(session, job_id=job.id)
    for statement in (*_CLEAR_EXPERIMENT, _DELETE):
        ask(session, Question(statement, {"job_id": job.id}))
    session.expunge(job)
