"""The sweeps tables as the API asks them: a sweep stored, read with its trials, listed, ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from app.core.sql import Question, Statement, ask, one, scalar
from app.core.tables import Job, Sweep, SweepFailedAsk, SweepTrial, utcnow

SWEEPS, TRIALS, JOBS = Sweep.__table__, SweepTrial.__table__, Job.__table__
FAILED_ASKS = SweepFailedAsk.__table__

_INSERT = Statement(insert(SWEEPS))
_GET = Statement(select(SWEEPS).where(SWEEPS.c.id == bindparam("sweep_id"),
                                      SWEEPS.c.tenant_id == bindparam("tenant_id")))
_TRIALS = Statement(select(TRIALS.c.number, TRIALS.c.job_id, TRIALS.c.params, TRIALS.c.objective, TRIALS.c.note,
                           JOBS.c.status).select_from(TRIALS.join(JOBS, JOBS.c.id == TRIALS.c.job_id))
                    .where(TRIALS.c.sweep_id == bindparam("sweep_id")).order_by(TRIALS.c.number))
_FAILED_ASKS = Statement(select(FAILED_ASKS.c.number, FAILED_ASKS.c.params, FAILED_ASKS.c.reason,
                                FAILED_ASKS.c.failed_at).where(FAILED_ASKS.c.sweep_id == bindparam("sweep_id"))
                         .order_by(FAILED_ASKS.c.number))
_FAILED_ASK = Statement(select(FAILED_ASKS.c.reason).where(FAILED_ASKS.c.sweep_id == bindparam("sweep_id"),
                                                          FAILED_ASKS.c.number == bindparam("trial_number")))
_TRIAL_JOB = Statement(select(TRIALS.c.job_id).where(TRIALS.c.sweep_id == bindparam("sweep_id"),
                                                    TRIALS.c.number == bindparam("trial_number")))
_ACTIVE_JOBS = Statement(select(JOBS.c.id).select_from(TRIALS.join(JOBS, JOBS.c.id == TRIALS.c.job_id))
                         .where(TRIALS.c.sweep_id == bindparam("sweep_id"), JOBS.c.status.in_(("queued", "running")))
                         .order_by(TRIALS.c.number))
_END = Statement(update(SWEEPS).where(SWEEPS.c.id == bindparam("sweep_id"))
                 .values(status=bindparam("end_status"), finished_at=bindparam("now")))
_SUMMARY = (SWEEPS.c.id, SWEEPS.c.name, SWEEPS.c.status, SWEEPS.c.plan, SWEEPS.c.trials_created, SWEEPS.c.created_at,
            SWEEPS.c.finished_at)
_PAGE = Statement(select(*_SUMMARY).where(SWEEPS.c.tenant_id == bindparam("tenant_id"))
                  .order_by(SWEEPS.c.created_at.desc(), SWEEPS.c.id.desc()).limit(bindparam("limit")))
_PAGE_AFTER = Statement(select(*_SUMMARY).where(
    SWEEPS.c.tenant_id == bindparam("tenant_id"),
    tuple_(SWEEPS.c.created_at, SWEEPS.c.id) < tuple_(bindparam("after_created", type_=SWEEPS.c.created_at.type),
                                                      bindparam("after_id")))
    .order_by(SWEEPS.c.created_at.desc(), SWEEPS.c.id.desc()).limit(bindparam("limit")))


def insert_sweep(session: Session, *, sweep_id: str, tenant_id: str, name: str | None, study_name: str,
                 request: dict[str, Any], plan: dict[str, Any]) -> None:
    ask(session, Question(_INSERT, {"id": sweep_id, "tenant_id": tenant_id, "name": name, "status": "running",
                                    "request": request, "plan": plan, "study_name": study_name, "trials_created": 0,
                                    "created_at": utcnow(), "finished_at": None}))


def get_sweep(session: Session, *, tenant_id: str, sweep_id: str) -> Any:
    return ask(session, Question(_GET, {"sweep_id": sweep_id, "tenant_id": tenant_id}, one))


def trials_of(session: Session, *, sweep_id: str) -> list[Any]:
    """(number, job_id, params, objective, note, status) of each trial, in order."""
    return ask(session, Question(_TRIALS, {"sweep_id": sweep_id}))


def failed_asks_of(session: Session, *, sweep_id: str) -> list[Any]:
    """(number, params, reason, failed_at) of the client sweep's asked trials that never got a job, in order."""
    return ask(session, Question(_FAILED_ASKS, {"sweep_id": sweep_id}))


def failed_ask_reason(session: Session, *, sweep_id: str, number: int) -> str | None:
    """Why the sweep's asked trial `number` has no job; None unless it was counted failed without one."""
    return ask(session, Question(_FAILED_ASK, {"sweep_id": sweep_id, "trial_number": number}, scalar))


def trial_job(session: Session, *, sweep_id: str, number: int) -> str | None:
    """The job of the sweep's trial `number`; None while it has none."""
    return ask(session, Question(_TRIAL_JOB, {"sweep_id": sweep_id, "trial_number": number}, scalar))


def active_trial_jobs(session: Session, *, sweep_id: str) -> list[str]:
    return [row.id for row in ask(session, Question(_ACTIVE_JOBS, {"sweep_id": sweep_id}))]


def end_sweep(session: Session, *, sweep_id: str, status: str) -> None:
    ask(session, Question(_END, {"sweep_id": sweep_id, "end_status": status, "now": utcnow()}))


def page(session: Session, *, tenant_id: str, limit: int, after: tuple[datetime, str] | None) -> list[Any]:
    """The tenant's sweeps newest first, `limit` of them after the (created_at, id) of the page before."""
    if after is None:
        return ask(session, Question(_PAGE, {"tenant_id": tenant_id, "limit": limit}))
    return ask(session, Question(_PAGE_AFTER, {"tenant_id": tenant_id, "limit": limit, "after_created": after[0],
                                               "after_id": after[1]}))
