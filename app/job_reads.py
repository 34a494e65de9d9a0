"""The job reads users poll hardest, `GET /v1/jobs/{id}` and `GET /v1/jobs`, each one SQL statement in Core.

Why not the ORM here: in the profile of bench/api_load.py the ORM's work (compiling, loading objects into the
identity map, a second statement for the epochs, another for the count) was the largest share of the API's
CPU. One statement answers a job with its epochs (aggregated to one JSON array in SQL), another a page of
jobs with its total (a window count); only a queued job asks one more question, its place in the queue.
The answer is the same `JobOut` as every other jobs route returns (app/routes/jobs.py `job_out`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from app.problems import not_found
from app.schemas import JobOut
from app.services.scope import ID
from app.tables import Job

COLUMNS = (Job.id, Job.tenant_id, Job.kind, Job.status, Job.model_id, Job.attempt, Job.max_attempts,
           Job.created_at, Job.started_at, Job.finished_at, Job.error, Job.cancel_requested_at, Job.queue,
           Job.request["submitted"].label("submitted"), Job.result)

# [[epoch, attempt, logs], ...] in epoch order, or NULL without epochs.
EPOCHS_SQL = {
    "postgresql": "(SELECT json_agg(json_build_array(e.epoch, e.attempt, e.logs) ORDER BY e.epoch) "
                  "FROM job_epochs AS e WHERE e.job_id = jobs.id)",
    "sqlite": "(SELECT json_group_array(json_array(e.epoch, e.attempt, json(e.logs))) FROM "
              "(SELECT epoch, attempt, logs FROM job_epochs WHERE job_id = jobs.id ORDER BY epoch) AS e)",
}


def _json(value: Any) -> Any:
    # Drivers differ: psycopg decodes json values itself, sqlite3 hands back text.
    return json.loads(value) if isinstance(value, str | bytes) else value


def _queue_position(session: Session, row: Any) -> int | None:
    """As app.services.jobs.queue_position: the tenant's own queued jobs ahead in the same queue, plus one."""
    if row.status != "queued":
        return None
    ahead = session.scalar(select(func.count()).select_from(Job)
                           .where(Job.tenant_id == row.tenant_id, Job.queue == row.queue, Job.status == "queued",
                                  Job.created_at < row.created_at))
    return ahead + 1


def _job_out(session: Session, row: Any, epochs: list[list[Any]]) -> JobOut:
    keys = sorted({key for _epoch, _attempt, logs in epochs for key in logs})
    return JobOut(
        id=row.id, kind=row.kind, status=row.status, model_id=row.model_id, attempt=row.attempt,
        max_attempts=row.max_attempts, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, error=_json(row.error), queue_position=_queue_position(session, row),
        cancel_requested_at=row.cancel_requested_at, request=_json(row.submitted) or {},
        history={key: [logs.get(key) for _epoch, _attempt, logs in epochs] for key in keys},
        epochs=[{"epoch": epoch, "attempt": attempt, **logs} for epoch, attempt, logs in epochs],
        result=_json(row.result),
        links={"self": f"/v1/jobs/{row.id}", "events": f"/v1/jobs/{row.id}/events",
               "artifacts": f"/v1/jobs/{row.id}/artifacts", "model": f"/v1/models/{row.model_id}"},
    )


def job_document(session: Session, *, tenant_id: str, job_id: str) -> JobOut:
    """The tenant's job with its epoch history; another tenant's job is as missing as one that never was."""
    if not ID.match(job_id):
        raise not_found("job", job_id)
    epochs = literal_column(EPOCHS_SQL[session.get_bind().dialect.name]).label("epochs")
    row = session.execute(select(*COLUMNS, epochs).where(Job.id == job_id, Job.tenant_id == tenant_id)).first()
    if row is None:
        raise not_found("job", job_id)
    return _job_out(session, row, _json(row.epochs) or [])


def job_page(session: Session, *, tenant_id: str, status: str | None, model_id: str | None, limit: int,
             offset: int) -> tuple[list[JobOut], int]:
    """A page of the tenant's jobs, newest first (without epochs, as the list always answered), and the total."""
    query = select(*COLUMNS, func.count().over().label("total")).where(Job.tenant_id == tenant_id)
    count = select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)
    for column, value in ((Job.status, status), (Job.model_id, model_id)):
        if value is not None:
            query, count = query.where(column == value), count.where(column == value)
    rows = session.execute(query.order_by(Job.created_at.desc()).limit(limit).offset(offset)).all()
    if not rows:
        # Past the end (the total still answers), or nothing matches at all.
        return [], session.scalar(count) if offset else 0
    return [_job_out(session, row, []) for row in rows], rows[0].total
