"""The sweeps tables as both processes ask them: a sweep locked for its scheduler step, its trials' jobs inserted,
the trials whose end is still to be told to the study, and the sweeps still running.

Here, in the core, because the scheduler step (app/core/sweep_steps.py) runs in workers as well as in the API; the
API's own reads (a sweep's answer, the list) are in app/sweeps/repository.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update

from app.core.repositories.job_labels import INSERT_PARAMS, INSERT_TAGS
from app.core.repositories.jobs import Executor
from app.core.sql import Question, Statement, ask, one, scalar
from app.core.statuses import TERMINAL_STATUSES
from app.core.tables import Job, Sweep, SweepFailedAsk, SweepTrial

SWEEPS, TRIALS, JOBS = Sweep.__table__, SweepTrial.__table__, Job.__table__
FAILED_ASKS = SweepFailedAsk.__table__

# The sweep's row, locked (PostgreSQL) until the step's commit: two steps of one sweep (a trial's end on one
# worker, the periodic step on another) run one after the other, so neither asks for trials the other did. FOR NO
# KEY UPDATE: rows that point at the sweep (a client sweep's trial submitted by the API) are not held up by it.
_SWEEP = select(SWEEPS).where(SWEEPS.c.id == bindparam("sweep_id"))
_LOCK = Statement(postgresql=_SWEEP.with_for_update(key_share=True), sqlite=_SWEEP)
# The periodic step's: a sweep another step holds is that step's to move on (no row: nothing to do).
_LOCK_UNLESS_HELD = Statement(postgresql=_SWEEP.with_for_update(skip_locked=True, key_share=True), sqlite=_SWEEP)
_ROW = Statement(select(SWEEPS).where(SWEEPS.c.id == bindparam("sweep_id")))
_ACTIVE = Statement(select(func.count()).select_from(TRIALS.join(JOBS, JOBS.c.id == TRIALS.c.job_id))
                    .where(TRIALS.c.sweep_id == bindparam("sweep_id"), JOBS.c.status.in_(("queued", "running"))))
_UNTOLD = Statement(select(TRIALS.c.number, TRIALS.c.job_id, JOBS.c.status, JOBS.c.finished_at)
                    .select_from(TRIALS.join(JOBS, JOBS.c.id == TRIALS.c.job_id))
                    .where(TRIALS.c.sweep_id == bindparam("sweep_id"), TRIALS.c.told_at.is_(None),
                           JOBS.c.status.in_(TERMINAL_STATUSES)).order_by(TRIALS.c.number))
_TOLD = Statement(update(TRIALS).where(TRIALS.c.sweep_id == bindparam("of_sweep"),
                                       TRIALS.c.number == bindparam("trial_number"))
                  .values(told_at=bindparam("now"), objective=bindparam("objective"), note=bindparam("note")))
_INSERT_JOB = Statement(insert(JOBS))
_INSERT_TRIAL = Statement(insert(TRIALS))
_COUNTED = Statement(update(SWEEPS).where(SWEEPS.c.id == bindparam("sweep_id"))
                     .values(trials_created=bindparam("created")))
_END = Statement(update(SWEEPS).where(SWEEPS.c.id == bindparam("sweep_id"), SWEEPS.c.status == "running")
                 .values(status=bindparam("end_status"), finished_at=bindparam("now")).returning(SWEEPS.c.id))
_RUNNING = Statement(text("SELECT id FROM sweeps WHERE status = 'running' ORDER BY id"))
_SWEEP_OF_JOB = Statement(select(JOBS.c.sweep_id).where(JOBS.c.id == bindparam("job_id")))


def lock_sweep(executor: Executor, *, sweep_id: str, wait: bool = True) -> Any:
    """The sweep's row, locked until the caller's commit (PostgreSQL); None if there is none, or, without `wait`,
    if another transaction holds it locked."""
    return ask(executor, Question(_LOCK if wait else _LOCK_UNLESS_HELD, {"sweep_id": sweep_id}, one))


def sweep_row(executor: Executor, *, sweep_id: str) -> Any:
    """The sweep's row as it is now, not locked; None if there is none."""
    return ask(executor, Question(_ROW, {"sweep_id": sweep_id}, one))


def active_trials(executor: Executor, *, sweep_id: str) -> int:
    """The sweep's trials whose job is queued or running."""
    return ask(executor, Question(_ACTIVE, {"sweep_id": sweep_id}, scalar))


def untold_trials(executor: Executor, *, sweep_id: str) -> list[Any]:
    """(number, job_id, status, finished_at) of the trials whose job ended and whose end the study has not been told."""
    return ask(executor, Question(_UNTOLD, {"sweep_id": sweep_id}))


def mark_told(executor: Executor, *, sweep_id: str, number: int, objective: float | None, note: str | None,
              now: datetime) -> None:
    ask(executor, Question(_TOLD, {"of_sweep": sweep_id, "trial_number": number, "objective": objective,
                                   "note": note, "now": now}))


def insert_trial_row(executor: Executor, *, trial: dict[str, Any]) -> None:
    """A trial row for a job already stored (a client sweep's trial, whose job the client submitted)."""
    ask(executor, Question(_INSERT_TRIAL, trial))


_INSERT_FAILED_ASK = Statement(insert(FAILED_ASKS))


def insert_failed_ask(executor: Executor, *, sweep_id: str, number: int, params: dict[str, Any], reason: str,
                      now: datetime) -> None:
    """A client sweep's asked trial that will have no job, with why (its study told it failed)."""
    ask(executor, Question(_INSERT_FAILED_ASK, {"sweep_id": sweep_id, "number": number, "params": params,
                                                "reason": reason[:500], "failed_at": now}))


_TRIAL_NUMBERS = Statement(select(TRIALS.c.number).where(TRIALS.c.sweep_id == bindparam("sweep_id")))


def trial_numbers(executor: Executor, *, sweep_id: str) -> set[int]:
    """The numbers of the sweep's trials that have a job."""
    return {row.number for row in ask(executor, Question(_TRIAL_NUMBERS, {"sweep_id": sweep_id}))}


def insert_trial(executor: Executor, *, job: dict[str, Any], trial: dict[str, Any],
                 rows: Sequence[dict[str, Any]]) -> None:
    """A trial's job row, its params' and tags' indexed rows (`rows`: {name, number, text}) and its trial row."""
    ask(executor, Question(_INSERT_JOB, job))
    owner = {"job_id": job["id"], "tenant_id": job["tenant_id"]}
    if job["tags"]:
        ask(executor, Question(INSERT_TAGS, {**owner, "tags": json.dumps(job["tags"])}))
    if rows:
        ask(executor, Question(INSERT_PARAMS, {**owner, "params": json.dumps(list(rows))}))
    ask(executor, Question(_INSERT_TRIAL, trial))


def count_created(executor: Executor, *, sweep_id: str, created: int) -> None:
    ask(executor, Question(_COUNTED, {"sweep_id": sweep_id, "created": created}))


def end_sweep(executor: Executor, *, sweep_id: str, status: str, now: datetime) -> bool:
    """A running sweep ends `status` (completed or cancelled); False if it was not running."""
    return bool(ask(executor, Question(_END, {"sweep_id": sweep_id, "end_status": status, "now": now})))


def running_sweeps() -> Question[list[str]]:
    return Question(_RUNNING, {}, lambda rows: [row.id for row in rows])


def sweep_of_job(*, job_id: str) -> Question[str | None]:
    return Question(_SWEEP_OF_JOB, {"job_id": job_id}, scalar)


_PLAN = Statement(select(SWEEPS.c.plan).where(SWEEPS.c.id == bindparam("sweep_id")))


def plan_of(*, sweep_id: str) -> Question[dict[str, Any] | None]:
    """The sweep's plan (its space, objective, pruner), as the worker reads it to report a trial's epochs."""
    return Question(_PLAN, {"sweep_id": sweep_id}, scalar)


_BEST = {direction: Statement(
    select(TRIALS.c.number, TRIALS.c.job_id, TRIALS.c.params, TRIALS.c.objective)
    .select_from(TRIALS.join(JOBS, JOBS.c.id == TRIALS.c.job_id))
    .where(TRIALS.c.sweep_id == bindparam("sweep_id"), JOBS.c.status == "succeeded", TRIALS.c.objective.is_not(None))
    .order_by(TRIALS.c.objective.asc() if direction == "minimize" else TRIALS.c.objective.desc(), TRIALS.c.number)
    .limit(1)) for direction in ("minimize", "maximize")}
_FOR_EVENT = Statement(select(SWEEPS.c.id, SWEEPS.c.tenant_id, SWEEPS.c.name, SWEEPS.c.status, SWEEPS.c.plan,
                              SWEEPS.c.trials_created, SWEEPS.c.created_at, SWEEPS.c.finished_at)
                       .where(SWEEPS.c.id == bindparam("sweep_id")))


def best_trial(*, sweep_id: str, direction: str) -> Question[Any]:
    """(number, job_id, params, objective) of the succeeded trial with the best objective, or None."""
    return Question(_BEST[direction], {"sweep_id": sweep_id}, one)


def sweep_for_event(*, sweep_id: str) -> Question[Any]:
    return Question(_FOR_EVENT, {"sweep_id": sweep_id}, one)
