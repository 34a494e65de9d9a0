"""The experiment tables as the API asks them: a job's tags and params written at submit, its name, notes and tags
changed, and the few questions a comparison of many runs reads (the runs, their metric summaries, their epochs:
three statements however many runs). The worker keeps job_metrics (app/core/repositories/jobs.py); the lists'
filters and sorts are in app/jobs/listing.py.

Rows go in as one JSON parameter per statement (json_to_recordset on PostgreSQL, json_each on SQLite), and a
comparison names its runs the same way, so no statement has a variable number of parameters and each runs
unchanged on the event loop's connections (app/core/read_pool.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text, update
from sqlalchemy.orm import Session

from app.core.repositories.job_labels import INSERT_PARAMS, INSERT_TAGS
from app.core.sql import Question, Statement, ask, one
from app.core.tables import Job
from app.experiments.params import Scalar, param_row

JOBS = Job.__table__

_DELETE_TAGS = Statement(text("DELETE FROM job_tags WHERE job_id = :job_id"))
# The tenant's job's tags, its row locked until the transaction ends: two PATCHes that add tags lose neither (FOR NO
# KEY UPDATE: a worker's rows that point at the job, its epochs and metrics, are not held up by it).
_TAGS_OF = Statement(postgresql=text("SELECT tags FROM jobs WHERE id = :job_id AND tenant_id = :tenant_id "
                                     "FOR NO KEY UPDATE"),
                     sqlite=text("SELECT tags FROM jobs WHERE id = :job_id AND tenant_id = :tenant_id"))
_SET = {column: Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"))
                          .values({column: bindparam("value", type_=JOBS.c[column].type)}))
        for column in ("name", "notes", "tags")}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def record_submission(session: Session, *, job_id: str, tenant_id: str, tags: Sequence[str],
                      params: dict[str, Scalar]) -> None:
    """A new job's tags and params as indexed rows (the job row holds its own copies)."""
    if tags:
        ask(session, Question(INSERT_TAGS, {"job_id": job_id, "tenant_id": tenant_id, "tags": _json(list(tags))}))
    if params:
        rows = [{"name": name, "number": number, "text": value_text}
                for name, (number, value_text) in ((name, param_row(value)) for name, value in params.items())]
        ask(session, Question(INSERT_PARAMS, {"job_id": job_id, "tenant_id": tenant_id, "params": _json(rows)}))


def lock_job(session: Session, *, job_id: str, tenant_id: str) -> list[str] | None:
    """The tenant's job's tags, its row locked (PostgreSQL) until the caller's transaction ends; None when the
    tenant has no such job."""
    row = ask(session, Question(_TAGS_OF, {"job_id": job_id, "tenant_id": tenant_id}, one))
    if row is None:
        return None
    return json.loads(row.tags) if isinstance(row.tags, str) else list(row.tags or [])


def set_tags(session: Session, *, job_id: str, tenant_id: str, tags: Sequence[str]) -> None:
    """The job's tags become `tags`: its own copy and the indexed rows."""
    ask(session, Question(_SET["tags"], {"job_id": job_id, "value": list(tags)}))
    ask(session, Question(_DELETE_TAGS, {"job_id": job_id}))
    if tags:
        ask(session, Question(INSERT_TAGS, {"job_id": job_id, "tenant_id": tenant_id, "tags": _json(list(tags))}))


def set_field(session: Session, *, job_id: str, field: str, value: str | None) -> None:
    """Set the job's name or notes."""
    ask(session, Question(_SET[field], {"job_id": job_id, "value": value}))


# --- comparing runs --------------------------------------------------------------------------------------------

# The runs named by a JSON array of ids, the tenant's only.
_IDS = {"postgresql": "(SELECT value FROM json_array_elements_text(CAST(:ids AS json)))",
        "sqlite": "(SELECT value FROM json_each(:ids))"}
_RUNS = Statement(**{dialect: text(
    "SELECT id, name, tags, status, kind, model_id, created_at, params FROM jobs "
    f"WHERE tenant_id = :tenant_id AND id IN {ids}").columns(created_at=Job.__table__.c.created_at.type)
    for dialect, ids in _IDS.items()})
_RUN_METRICS = Statement(**{dialect: text(
    "SELECT job_id, name, final, best, best_epoch FROM job_metrics "
    f"WHERE tenant_id = :tenant_id AND job_id IN {ids}") for dialect, ids in _IDS.items()})
# Their epochs, one row a run: its epochs as one JSON array of [epoch, logs] in epoch order, as text, decoded off
# the event loop (app/experiments/service.py). A row an epoch cost the API's event loop the driver's work on each
# of 50,000 rows (235 ms of CPU for 500 runs of 100 epochs, bench/compare.py), more than PostgreSQL's aggregating.
_RUN_EPOCHS = Statement(
    postgresql=text("SELECT e.job_id, json_agg(json_build_array(e.epoch, e.logs) ORDER BY e.epoch)::text AS epochs "
                    "FROM job_epochs AS e JOIN jobs ON jobs.id = e.job_id WHERE jobs.tenant_id = :tenant_id "
                    f"AND e.job_id IN {_IDS['postgresql']} GROUP BY e.job_id"),
    sqlite=text("SELECT e.job_id, json_group_array(json_array(e.epoch, json(e.logs))) AS epochs FROM job_epochs AS e "
                "JOIN jobs ON jobs.id = e.job_id WHERE jobs.tenant_id = :tenant_id AND e.job_id IN "
                f"{_IDS['sqlite']} GROUP BY e.job_id"))


def runs(*, tenant_id: str, ids: Sequence[str]) -> Question[list[Any]]:
    """The tenant's jobs among `ids` (id, name, tags, status, kind, model_id, created_at, params), any order."""
    return Question(_RUNS, {"tenant_id": tenant_id, "ids": _json(list(ids))})


def run_metrics(*, tenant_id: str, ids: Sequence[str]) -> Question[list[Any]]:
    """Their metric summaries: (job_id, name, final, best, best_epoch) rows."""
    return Question(_RUN_METRICS, {"tenant_id": tenant_id, "ids": _json(list(ids))})


def run_epochs(*, tenant_id: str, ids: Sequence[str]) -> Question[dict[str, str]]:
    """Their epochs: job id -> [[epoch, logs], ...] as JSON text (in epoch order on PostgreSQL; any on SQLite)."""
    return Question(_RUN_EPOCHS, {"tenant_id": tenant_id, "ids": _json(list(ids))},
                    lambda rows: {row.job_id: row.epochs for row in rows})
