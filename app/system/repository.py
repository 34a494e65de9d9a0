"""What /metrics and /ready ask the database: jobs by status, queue depths, the durations of jobs and epochs that
ended in a window, and whether SQL answers at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select, text

from app.core.repositories.jobs import queue_depths
from app.core.sql import Question, Statement
from app.core.tables import EpochLog, Job

__all__ = ["ended_epochs", "ended_jobs", "jobs_by_status", "ping", "queue_depths"]

JOBS, EPOCHS = Job.__table__, EpochLog.__table__
_PREVIOUS = EPOCHS.alias("previous")
# Every job counted by status: its cost grows with the jobs stored, once per scrape.
_BY_STATUS = Statement(select(JOBS.c.status, func.count()).group_by(JOBS.c.status))
_ENDED_JOBS = Statement(select(JOBS.c.kind, JOBS.c.status, JOBS.c.started_at, JOBS.c.finished_at).where(
    JOBS.c.finished_at > bindparam("since"), JOBS.c.finished_at <= bindparam("until"), JOBS.c.started_at.is_not(None)))
_ENDED_EPOCHS = Statement(
    select(EPOCHS.c.created_at, _PREVIOUS.c.created_at)
    .join(_PREVIOUS, and_(_PREVIOUS.c.job_id == EPOCHS.c.job_id, _PREVIOUS.c.epoch == EPOCHS.c.epoch - 1,
                          _PREVIOUS.c.attempt == EPOCHS.c.attempt))
    .where(EPOCHS.c.created_at > bindparam("since"), EPOCHS.c.created_at <= bindparam("until")))
_PING = Statement(text("SELECT 1"))


def jobs_by_status() -> Question[dict[str, int]]:
    return Question(_BY_STATUS, {}, lambda rows: {status: count for status, count in rows})


def ended_jobs(*, since: datetime, until: datetime) -> Question[list[Any]]:
    """(kind, status, started_at, finished_at) of the jobs that ended in (since, until]."""
    return Question(_ENDED_JOBS, {"since": since, "until": until})


def ended_epochs(*, since: datetime, until: datetime) -> Question[list[Any]]:
    """(created_at, the previous epoch's created_at) of the epochs recorded in (since, until] after another."""
    return Question(_ENDED_EPOCHS, {"since": since, "until": until})


def ping() -> Question[Any]:
    return Question(_PING)
