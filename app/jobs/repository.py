"""The jobs tables as the API asks them: the job answer, pages of jobs, and the API's writes (submit, cancel,
retry, delete). What workers ask too (the claim, leases, epochs, the end) is in app/core/repositories/jobs.py.

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

from app.core.scope import ID, owned
from app.core.sql import Question, Statement, ask, one, scalar
from app.core.statuses import TERMINAL_STATUSES
from app.core.tables import QUEUE_LEVEL_SHIFTS, Artifact, EpochLog, Job, utcnow
from app.jobs.answers import job_out, parse_json

JOBS, EPOCHS, ARTIFACTS = Job.__table__, EpochLog.__table__, Artifact.__table__

_COLUMNS = ("jobs.id, jobs.tenant_id, jobs.kind, jobs.status, jobs.model_id, jobs.attempt, jobs.max_attempts, "
            "jobs.created_at, jobs.started_at, jobs.finished_at, jobs.error, jobs.cancel_requested_at, jobs.queue, "
            "{submitted} AS submitted, jobs.result")

def _position_sql() -> str:
    """A queued job's place: 1 + the tenant's queued jobs in the queue with a more urgent priority (the lanes'
    totals) + those of its own lane with a lower ticket, summed from the blocks of each level below the whole
    lane (at most 31 each: the blocks before its own inside the next level's block) + the jobs of its own
    smallest block before it (at most 31, counted through the partial index of queued jobs)."""
    *levels, lane = QUEUE_LEVEL_SHIFTS
    same_lane = "b.tenant_id = jobs.tenant_id AND b.queue = jobs.queue AND b.priority = jobs.priority"
    parts = ["coalesce((SELECT sum(b.queued) FROM queue_blocks AS b WHERE b.tenant_id = jobs.tenant_id "
             f"AND b.queue = jobs.queue AND b.priority > jobs.priority AND b.level = {len(levels)}), 0)"]
    for level, shift in enumerate(levels):
        upper = (levels[level + 1] if level + 1 < len(levels) else lane)
        start = f"((jobs.queue_ticket >> {upper}) << {upper - shift})" if upper != lane else "0"
        parts.append(f"coalesce((SELECT sum(b.queued) FROM queue_blocks AS b WHERE {same_lane} AND b.level = {level} "
                     f"AND b.block >= {start} AND b.block < (jobs.queue_ticket >> {shift})), 0)")
    smallest = levels[0]
    parts.append("(SELECT count(*) FROM jobs AS ahead WHERE ahead.queue = jobs.queue AND ahead.tenant_id = "
                 "jobs.tenant_id AND ahead.status = 'queued' AND ahead.priority = jobs.priority AND "
                 f"ahead.queue_ticket >= ((jobs.queue_ticket >> {smallest}) << {smallest}) "
                 "AND ahead.queue_ticket < jobs.queue_ticket)")
    return "CASE WHEN jobs.status = 'queued' THEN 1 + " + " + ".join(parts) + " END AS queue_position"


_POSITION = _position_sql()
# The submitted request only (the stored one holds resolved arrays and more), and the epochs as
# [[epoch, attempt, logs], ...] in epoch order, or NULL without epochs.
_DIALECT = {
    "postgresql": {"submitted": "jobs.request -> 'submitted'",
                   "epochs": "(SELECT json_agg(json_build_array(e.epoch, e.attempt, e.logs) ORDER BY e.epoch) "
                             "FROM job_epochs AS e WHERE e.job_id = jobs.id)"},
    "sqlite": {"submitted": "json_extract(jobs.request, '$.submitted')",
               "epochs": "(SELECT json_group_array(json_array(e.epoch, e.attempt, json(e.logs))) FROM "
                         "(SELECT epoch, attempt, logs FROM job_epochs WHERE job_id = jobs.id ORDER BY epoch) AS e)"},
}
# Types attached so that each driver's values come back as the ORM gives them (timestamps as datetimes on SQLite).
_TYPES = {"created_at": Job.created_at.type, "started_at": Job.started_at.type, "finished_at": Job.finished_at.type,
          "cancel_requested_at": Job.cancel_requested_at.type}
_AFTER = bindparam("after_created_at", type_=DateTime(timezone=True))


def _statement(build: Any) -> Statement:
    return Statement(**{dialect: build(dialect) for dialect in _DIALECT})


@functools.cache
def _document() -> Statement:
    def build(dialect: str) -> Any:
        parts = _DIALECT[dialect]
        return text(f"SELECT {_COLUMNS.format(submitted=parts['submitted'])}, {parts['epochs']} AS epochs, "
                    f"{_POSITION} FROM jobs WHERE jobs.id = :job_id AND jobs.tenant_id = :tenant_id"
                    ).columns(**_TYPES)
    return _statement(build)


def _where(status: bool, model: bool) -> str:
    return ("jobs.tenant_id = :tenant_id" + (" AND jobs.status = :status" if status else "")
            + (" AND jobs.model_id = :model_id" if model else ""))


@functools.cache
def _page(status: bool, model: bool, after: bool) -> Statement:
    """Newest first, by (created_at, id): after a cursor, the rows past it in the index of the filters given
    (ix_jobs_tenant_created, _status_created, _model_created); without one, from the top. OFFSET is 0 unless a
    client still pages by offset."""
    def build(dialect: str) -> Any:
        keyset = " AND (jobs.created_at, jobs.id) < (:after_created_at, :after_id)" if after else ""
        clause = text(f"SELECT {_COLUMNS.format(submitted=_DIALECT[dialect]['submitted'])}, {_POSITION} FROM jobs "
                      f"WHERE {_where(status, model)}{keyset} ORDER BY jobs.created_at DESC, jobs.id DESC "
                      "LIMIT :limit OFFSET :offset").columns(**_TYPES)
        return clause.bindparams(_AFTER) if after else clause
    return _statement(build)


@functools.cache
def _count(status: bool, model: bool) -> Statement:
    return Statement(text(f"SELECT count(*) FROM jobs WHERE {_where(status, model)}"))


@functools.cache
def _estimate(status: bool, model: bool) -> Statement:
    # The planner's row estimate for the same WHERE: planning only, nothing is read.
    return Statement(postgresql=text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM jobs WHERE {_where(status, model)}"))


def _filters(tenant_id: str, status: str | None, model_id: str | None) -> dict[str, Any]:
    return {"tenant_id": tenant_id, **{name: value for name, value in (("status", status), ("model_id", model_id))
                                       if value is not None}}


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


def job_page(*, tenant_id: str, status: str | None, model_id: str | None, limit: int,
             after: tuple[Any, str] | None = None, offset: int = 0) -> Question[tuple[list[Any], Any]]:
    """A page of the tenant's jobs, newest first, without epochs (as the list always answered): (items, the
    last row's (created_at, id) if more rows follow, else None). One row more than the page is read to know."""
    params: dict[str, Any] = {**_filters(tenant_id, status, model_id), "limit": limit + 1, "offset": offset}
    if after is not None:
        params["after_created_at"], params["after_id"] = after

    def shape(rows: list[Any]) -> tuple[list[Any], Any]:
        items = [job_out(row, request=parse_json(row.submitted) or {}, epochs=[], queue_position=row.queue_position)
                 for row in rows[:limit]]
        more = len(rows) > limit
        return items, (rows[limit - 1].created_at, rows[limit - 1].id) if more else None
    return Question(_page(status is not None, model_id is not None, after is not None), params, shape)


def job_count(*, tenant_id: str, status: str | None, model_id: str | None, estimate: bool) -> Question[int]:
    """The number of the tenant's jobs with these filters: counted (its cost grows with them), or PostgreSQL's
    planner estimate (a plan, no rows read)."""
    filters = _filters(tenant_id, status, model_id)
    if estimate:
        return Question(_estimate(status is not None, model_id is not None), filters,
                        lambda rows: int(parse_json(rows[0][0])[0]["Plan"]["Plan Rows"]))
    return Question(_count(status is not None, model_id is not None), filters, scalar)


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
_DELETE = Statement(delete(JOBS).where(JOBS.c.id == bindparam("job_id")))


def insert_job(session: Session, **values: Any) -> Job:
    """A new job row; the database gives it its queue ticket (migrations 0007)."""
    job = Job(**values)
    session.add(job)
    session.flush()
    return job


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
    """The job's artifacts and epochs (their blobs stay: other rows may hold the same bytes)."""
    ask(session, Question(_CLEAR_ARTIFACTS, {"job_id": job_id}))
    ask(session, Question(_CLEAR_EPOCHS, {"job_id": job_id}))


def delete_job(session: Session, *, job: Job) -> None:
    clear_outputs(session, job_id=job.id)
    ask(session, Question(_DELETE, {"job_id": job.id}))
    session.expunge(job)
