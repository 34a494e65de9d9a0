"""The job reads users poll hardest, `GET /v1/jobs/{id}` and `GET /v1/jobs`, each one SQL statement in Core.

Why not the ORM here: in the profile of bench/api_load.py the ORM's work (compiling, loading objects into the
identity map, a second statement for the epochs, another for the count) was the largest share of the API's
CPU. One statement answers a job with its epochs (aggregated to one JSON array in SQL), another a page of
jobs with its total (a window count); only a queued job asks one more question, its place in the queue.
Every jobs route answers with `job_out` below.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.errors import not_found
from app.core.scope import ID
from app.core.tables import Job
from app.jobs.schemas import JobOut
from app.jobs.service import queue_position

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# Plain SQL, built once: compiling a select() with JSON paths and a subquery on every request cost more CPU
# than the statement's own round trip. Types are attached so that each driver's values come back as the ORM
# would give them (timestamps as datetimes on SQLite too).
_SELECT = ("SELECT jobs.id, jobs.tenant_id, jobs.kind, jobs.status, jobs.model_id, jobs.attempt, jobs.max_attempts, "
           "jobs.created_at, jobs.started_at, jobs.finished_at, jobs.error, jobs.cancel_requested_at, jobs.queue, "
           "{submitted} AS submitted, jobs.result")
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
_TYPES = {"created_at": Job.created_at.type, "started_at": Job.started_at.type, "finished_at": Job.finished_at.type,
          "cancel_requested_at": Job.cancel_requested_at.type}


def _sql(dialect: str) -> dict[str, Any]:
    """The statements' text, with `:name` parameters: the job, and per combination of filters a page and a count."""
    parts = _DIALECT[dialect]
    head = _SELECT.format(submitted=parts["submitted"])
    pages = {}
    # One statement for each combination of filters given, so each is compiled (and prepared) once.
    for status in (False, True):
        for model in (False, True):
            where = "jobs.tenant_id = :tenant_id" + (" AND jobs.status = :status" if status else "") + (
                " AND jobs.model_id = :model_id" if model else "")
            pages[status, model] = (f"{head}, count(*) OVER () AS total FROM jobs WHERE {where} "
                                    "ORDER BY jobs.created_at DESC LIMIT :limit OFFSET :offset",
                                    f"SELECT count(*) FROM jobs WHERE {where}")
    return {"job": f"{head}, {parts['epochs']} AS epochs FROM jobs WHERE jobs.id = :job_id AND jobs.tenant_id = "
                   ":tenant_id", "pages": pages}


@functools.cache
def _statements(dialect: str) -> dict[str, Any]:
    sql = _sql(dialect)
    return {"job": text(sql["job"]).columns(**_TYPES),
            "pages": {filters: (text(page).columns(**_TYPES), text(count))
                      for filters, (page, count) in sql["pages"].items()}}


_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@functools.cache
def _pg_statements() -> dict[str, Any]:
    """The same statements for psycopg on the event loop (app/core/read_pool.py): `%(name)s` parameters."""
    def pyformat(statement: str) -> str:
        return _PARAMETER.sub(r"%(\1)s", statement)

    sql = _sql("postgresql")
    return {"job": pyformat(sql["job"]),
            "pages": {filters: (pyformat(page), pyformat(count)) for filters, (page, count) in sql["pages"].items()},
            "ahead": "SELECT count(*) FROM jobs WHERE tenant_id = %(tenant_id)s AND queue = %(queue)s AND status = "
                     "'queued' AND created_at < %(created_at)s"}


def _json(value: Any) -> Any:
    # Drivers differ: psycopg decodes json values itself, sqlite3 hands back text.
    return json.loads(value) if isinstance(value, str | bytes) else value


async def _queue_position_pg(connection: AsyncConnection, row: Any) -> int | None:
    if row.status != "queued":
        return None
    cursor = await connection.execute(_pg_statements()["ahead"], {
        "tenant_id": row.tenant_id, "queue": row.queue, "created_at": row.created_at})
    return (await cursor.fetchone())[0] + 1


def job_out(job: Any, *, request: dict[str, Any], epochs: list[list[Any]], queue_position: int | None) -> JobOut:
    """The `JobOut` of a job row (a `Job` or a row of these statements) and its epochs as [epoch, attempt, logs]."""
    keys = sorted({key for _epoch, _attempt, logs in epochs for key in logs})
    return JobOut(
        id=job.id, kind=job.kind, status=job.status, model_id=job.model_id, attempt=job.attempt,
        max_attempts=job.max_attempts, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, error=_json(job.error), queue_position=queue_position,
        cancel_requested_at=job.cancel_requested_at, request=request,
        history={key: [logs.get(key) for _epoch, _attempt, logs in epochs] for key in keys},
        epochs=[{"epoch": epoch, "attempt": attempt, **logs} for epoch, attempt, logs in epochs],
        result=_json(job.result),
        links={"self": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events",
               "artifacts": f"/v1/jobs/{job.id}/artifacts", "model": f"/v1/models/{job.model_id}"},
    )


def _job_out(row: Any, epochs: list[list[Any]], queue_position: int | None) -> JobOut:
    return job_out(row, request=_json(row.submitted) or {}, epochs=epochs, queue_position=queue_position)


def _filters(status: str | None, model_id: str | None) -> dict[str, Any]:
    return {name: value for name, value in (("status", status), ("model_id", model_id)) if value is not None}


def job_document(session: Session, *, tenant_id: str, job_id: str) -> JobOut:
    """The tenant's job with its epoch history; another tenant's job is as missing as one that never was."""
    if not ID.match(job_id):
        raise not_found("job", job_id)
    statement = _statements(session.get_bind().dialect.name)["job"]
    row = session.execute(statement, {"job_id": job_id, "tenant_id": tenant_id}).first()
    if row is None:
        raise not_found("job", job_id)
    return _job_out(row, _json(row.epochs) or [], queue_position(session, row))


def job_page(session: Session, *, tenant_id: str, status: str | None, model_id: str | None, limit: int,
             offset: int) -> tuple[list[JobOut], int]:
    """A page of the tenant's jobs, newest first (without epochs, as the list always answered), and the total."""
    page, count = _statements(session.get_bind().dialect.name)["pages"][status is not None, model_id is not None]
    params = {"tenant_id": tenant_id, **_filters(status, model_id)}
    rows = session.execute(page, {**params, "limit": limit, "offset": offset}).all()
    if not rows:
        # Past the end (the total still answers), or nothing matches at all.
        return [], session.scalar(count, params) if offset else 0
    return [_job_out(row, [], queue_position(session, row)) for row in rows], rows[0].total


async def job_document_pg(connection: AsyncConnection, *, tenant_id: str, job_id: str) -> JobOut:
    """`job_document` on an async psycopg connection (app/core/read_pool.py)."""
    if not ID.match(job_id):
        raise not_found("job", job_id)
    cursor = await connection.execute(_pg_statements()["job"], {"job_id": job_id, "tenant_id": tenant_id})
    row = await cursor.fetchone()
    if row is None:
        raise not_found("job", job_id)
    return _job_out(row, _json(row.epochs) or [], await _queue_position_pg(connection, row))


async def job_page_pg(connection: AsyncConnection, *, tenant_id: str, status: str | None, model_id: str | None,
                      limit: int, offset: int) -> tuple[list[JobOut], int]:
    """`job_page` on an async psycopg connection (app/core/read_pool.py)."""
    page, count = _pg_statements()["pages"][status is not None, model_id is not None]
    params = {"tenant_id": tenant_id, **_filters(status, model_id)}
    rows = await (await connection.execute(page, {**params, "limit": limit, "offset": offset})).fetchall()
    if not rows:
        if not offset:
            return [], 0
        return [], (await (await connection.execute(count, params)).fetchone())[0]
    return [_job_out(row, [], await _queue_position_pg(connection, row)) for row in rows], rows[0].total
