"""A sweep's scheduler step: tell the study how ended trials ended, then keep up to `max_concurrent` trials queued
or running until `max_trials` (or the grid, or the time limit) is spent, then end the sweep `completed`.

It runs wherever a sweep must move on without its client: in the API right after the sweep is created, in the
worker after each trial's end (in a thread, the next trial of a random or grid sweep queued before the ended one is
told: workers/sweeps.py), and in every worker's reaper round for each running sweep that has something to do (so a
sweep goes on after a worker dies mid-trial or a message is lost; `due`). Two steps of one sweep never overlap: each
holds the sweep's row lock (PostgreSQL) from its first read to its commit, and the reaper's skips a sweep held.
Optuna's writes (ask, tell) go through its own connections (app/core/studies.py), outside that transaction: a trial
asked for in a step that then fails is told failed by the next step's look at the study, never given a job twice.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.core import studies
from app.core.contract import JobRequest
from app.core.queue import announce_and_enqueue
from app.core.quotas import lock_tenant, tenant_limits
from app.core.repositories import jobs as job_rows
from app.core.repositories import sweeps as rows
from app.core.settings import get_settings
from app.core.sql import ask
from app.core.tables import new_id, utcnow
from app.core.webhooks import record_sweep_end

log = logging.getLogger("kerasd.sweeps")
ACTIVE_STATUSES = ("queued", "running")


@dataclass(frozen=True)
class NewTrial:
    """A trial job made by a step, to be queued after the step's commit."""

    job_id: str
    queue: str
    priority: int


def set_at(document: Any, at: list[str | int], value: Any) -> None:
    """Put `value` at a path of keys and list indexes (the path was checked to exist when the sweep was made)."""
    for key in at[:-1]:
        document = document[key]
    document[at[-1]] = value


def objective_of(epochs: list[tuple[int, dict[str, Any]]], metric: str, direction: str) -> float | None:
    """The trial's objective: the best value its epochs logged for the metric (as KerasTuner takes a trial's)."""
    values = [float(logs[metric]) for _epoch, logs in epochs
              if isinstance(logs.get(metric), int | float) and math.isfinite(float(logs[metric]))]
    if not values:
        return None
    return min(values) if direction == "minimize" else max(values)


def trial_request(plan: dict[str, Any], params: dict[str, Any], link: dict[str, Any]) -> dict[str, Any]:
    """The trial's job contract: the base job's, with the trial's values where the space puts them (`submitted`,
    the user's request as the trial's job answers it, gets them at the paths the user named)."""
    request = copy.deepcopy(plan["template"])
    submitted = copy.deepcopy(request["submitted"])
    keras_config = copy.deepcopy(plan["model_template"]) if plan.get("model_template") is not None else None
    for dimension in plan["space"]:
        value = params[dimension["path"]]
        stored = dimension.get("translate", {}).get(str(value), value) if dimension.get("translate") else value
        if dimension["target"] == "model":
            set_at(keras_config, dimension["at"], stored)
        else:
            set_at(request, dimension["at"], stored)
            try:
                set_at(submitted, dimension["user_at"], value)
            except (KeyError, IndexError, TypeError):
                # A value the user left to its default is not in their request as sent: the trial's value is in
                # its contract and its params, which is what runs and what lists show.
                pass
    # Version 2 at least (a trial); its template's own version (3: it names its backend) stays.
    request.update(version=max(int(request.get("version", 1)), 2), trial=link, keras_config=keras_config,
                   submitted=submitted)
    # The same check the worker makes when it reads the job: a trial the contract refuses is never queued.
    return JobRequest.model_validate(request).model_dump(mode="json")


def _param_rows(params: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name, value in params.items():
        number = float(value) if isinstance(value, bool | int | float) else None
        found.append({"name": name, "number": number, "text": None if number is not None else str(value)[:200]})
    return found


class _Study:
    """The sweep's study, loaded at most once in a step, for its tells and then its asks (each load of Optuna's
    RDB storage is three reads, and its cache of the study's trials lives as long as the study object)."""

    def __init__(self, sweep: Any) -> None:
        self._sweep = sweep
        self._study: Any = None

    def loaded(self) -> Any:
        if self._study is None:
            self._study = studies.load(self._sweep.plan, self._sweep.study_name, asking=False)
        return self._study

    def tell(self, *, number: int, status: str, value: float | None) -> None:
        studies.tell_in(self.loaded(), number=number, status=status, value=value)


def _tell_ended(session: Session, sweep: Any, study: _Study) -> None:
    plan = sweep.plan
    for trial in rows.untold_trials(session, sweep_id=sweep.id):
        epochs = ask(session, job_rows.recorded_epochs(job_id=trial.job_id))
        value = objective_of(epochs, plan["metric"], plan["direction"])
        note = None
        if trial.status == "succeeded" and value is None:
            logged = sorted({name for _epoch, logs in epochs for name in logs})
            note = (f"the trial's epochs logged no {plan['metric']!r} (they logged {logged}): set the sweep's "
                    "objective metric to one of those")
        elif trial.status not in ("succeeded", "pruned"):
            note = f"the trial's job ended {trial.status}"
        study.tell(number=trial.number, status=trial.status, value=value)
        kept = value if trial.status in ("succeeded", "pruned") else None
        rows.mark_told(session, sweep_id=sweep.id, number=trial.number, objective=kept, note=note, now=utcnow())


def _queue_room(session: Session, tenant_id: str) -> int:
    """How many more jobs the tenant may queue now (its queued-jobs quota, as a submission checks it)."""
    quota = tenant_limits(session, tenant_id).queued_jobs
    if quota <= 0:
        return 1 << 30
    return max(0, quota - ask(session, job_rows.queued_of_tenant(tenant_id=tenant_id)))


def _new_trial(session: Session, sweep: Any, trial: Any, told: _Study, clock: _Clock) -> NewTrial:
    """The asked trial's job, stored (its study told it failed if that fails)."""
    plan = sweep.plan
    # The study's trial number is the sweep's: a trial asked for by a step that failed keeps its number, told failed.
    # Optuna names a trial's row in its storage only as `_trial_id`; workers rebuild the trial from it to report.
    number, trial_id = trial.number, trial._trial_id
    try:
        link = {"sweep_id": sweep.id, "number": number, "study": sweep.study_name, "optuna_trial_id": trial_id,
                "metric": plan["metric"], "direction": plan["direction"],
                "prune": plan["early_stopping"]["rule"] != "none"}
        request = trial_request(plan, trial.params, link)
        clock.mark("contract")
        params = {**plan["params"], **{name: trial.params[d["path"]] for d in plan["space"]
                                       for name in d.get("params", [])}, **trial.params}
        job_id = new_id()
        name = f"{sweep.name or 'sweep ' + sweep.id[:8]} trial {number}"
        job = {"id": job_id, "tenant_id": sweep.tenant_id, "kind": "fit", "status": "queued",
               "model_id": plan["model_id"], "request": request, "attempt": 0, "max_attempts": plan["max_attempts"],
               "queue": request["queue"], "priority": request["priority"], "name": name[:200],
               "tags": plan["tags"], "params": params, "sweep_id": sweep.id, "created_at": utcnow()}
        rows.insert_trial(session, job=job, trial={"sweep_id": sweep.id, "number": number, "job_id": job_id,
                                                   "optuna_trial_id": trial_id, "params": trial.params},
                          rows=_param_rows(params))
        clock.mark("insert")
        return NewTrial(job_id, request["queue"], request["priority"])
    except Exception:
        told.tell(number=number, status="failed", value=None)
        raise


# A client sweep's trial asked for and given no job in this long is told failed (its client went away between the
# ask and the submit), so the sweep can end; its job submitted later is a 409.
ASK_TTL_S = 15 * 60.0


def time_limit_passed(sweep: Any, now: datetime) -> bool:
    """Whether the sweep's time limit (if it has one) is past: it makes no more trials."""
    limit = sweep.plan.get("time_limit_s")
    return limit is not None and now >= _aware(sweep.created_at, now) + timedelta(seconds=limit)


def _trials_left(sweep: Any, now: datetime) -> int:
    """How many more trials the sweep's budget allows (none once its time limit is past)."""
    plan = sweep.plan
    if plan.get("space_from") == "client":
        budget = plan["max_trials"]
    else:
        budget = plan["max_trials"] if plan["algorithm"] != "grid" else min(plan["max_trials"], studies.grid_size(plan))
    return 0 if time_limit_passed(sweep, now) else budget - sweep.trials_created


def _client_step(session: Session, sweep: Any, study: _Study) -> None:
    """A client sweep makes no trials: once its budget is spent, it ends when its trials' jobs have ended and no asked
    trial still waits for its job (one that waited past ASK_TTL_S is told failed)."""
    now = utcnow()
    left = _trials_left(sweep, now)
    if left > 0:
        return
    if rows.active_trials(session, sweep_id=sweep.id):
        return
    with_jobs = rows.trial_numbers(session, sweep_id=sweep.id)
    waiting = [trial for trial in studies.running_trials(sweep.study_name) if trial.number not in with_jobs]
    for trial in waiting:
        # Optuna stamps a trial's start with the process's local time, without a zone.
        started = trial.datetime_start
        if started is not None and (datetime.now() - started).total_seconds() > ASK_TTL_S:
            study.tell(number=trial.number, status="failed", value=None)
            rows.insert_failed_ask(session, sweep_id=sweep.id, number=trial.number, params=dict(trial.params),
                                   reason=f"no job was submitted for it within {int(ASK_TTL_S)} s after the sweep's "
                                          "budget was spent", now=now)
        else:
            return
    if rows.end_sweep(session, sweep_id=sweep.id, status="completed", now=now):
        record_sweep_end(session, sweep_id=sweep.id, public_url=get_settings().public_url)


# A trial that ended this recently is left to the step its own worker runs right after its end (workers/sweeps.py):
# the periodic step of every worker's reaper takes it on only after this long (that worker died, or its step failed).
SETTLE_S = 10.0


def due(session: Session, *, sweep_id: str, settle_s: float = SETTLE_S) -> bool:
    """Whether a periodic step of the sweep has anything to do, read without its lock: a trial's end to tell that
    its own worker has not told within `settle_s`, a trial to make, or the sweep to end. The reaper steps only such
    sweeps, so its rounds hold no sweep's lock while a step after a trial's end wants it."""
    sweep = rows.sweep_row(session, sweep_id=sweep_id)
    if sweep is None:
        return False
    now = utcnow()
    untold = rows.untold_trials(session, sweep_id=sweep_id)
    if untold:
        return any(trial.finished_at is None or (now - _aware(trial.finished_at, now)).total_seconds() >= settle_s
                   for trial in untold)
    if sweep.status != "running":
        return False
    left = _trials_left(sweep, now)
    active = rows.active_trials(session, sweep_id=sweep_id)
    if sweep.plan.get("space_from") == "client" or left <= 0:
        return left <= 0 and active == 0
    return sweep.plan["max_concurrent"] > active


def _aware(at: datetime, now: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=now.tzinfo)


# The samplers whose next trial does not depend on how the last ones ended (random draws, a grid's next point).
BLIND_SAMPLERS = ("random", "grid")


def advance(session: Session, *, sweep_id: str, wait: bool = True, make_only: bool = False,
            timings: dict[str, float] | None = None) -> list[NewTrial]:
    """One step of the sweep in the caller's transaction (the caller commits, then queues the new trials). Without
    `wait`, a sweep another step holds locked is left to that step (PostgreSQL; nothing is done). With `make_only`,
    only the trials a random or grid sweep may make now, its ended trials left for the full step that follows (the
    step after a trial's end queues the next trial before it tells the study; nothing else for other sweeps).
    `timings` gets where the step went (seconds), for the worker's log."""
    clock = _Clock(timings)
    sweep = rows.lock_sweep(session, sweep_id=sweep_id, wait=wait)
    clock.mark("lock")
    if sweep is None:
        return []
    plan = sweep.plan
    if make_only and (sweep.status != "running" or plan.get("space_from") == "client"
                      or plan["algorithm"] not in BLIND_SAMPLERS):
        return []
    study = _Study(sweep)
    if not make_only:
        _tell_ended(session, sweep, study)
        clock.mark("tell")
    if sweep.status != "running":
        return []
    if plan.get("space_from") == "client":
        _client_step(session, sweep, study)
        return []
    now = utcnow()
    left = _trials_left(sweep, now)
    active = rows.active_trials(session, sweep_id=sweep_id)
    if left <= 0:
        if not make_only and active == 0 and rows.end_sweep(session, sweep_id=sweep_id, status="completed", now=now):
            record_sweep_end(session, sweep_id=sweep_id, public_url=get_settings().public_url)
        return []
    wanted = min(plan["max_concurrent"] - active, left)
    if wanted <= 0:
        return []
    # The tenant's queued-jobs quota is read before Optuna's ask and again under the tenant's row lock for the
    # inserts: the lock is not held through the ask (110 ms at load 9), since a worker's claim of the tenant's next
    # job waits on the same lock (it did, for 150 ms, with more trials at once than workers).
    wanted = min(wanted, _queue_room(session, sweep.tenant_id))
    clock.mark("quota")
    if wanted <= 0:
        log.info("sweep %s waits: its tenant's queued-jobs quota is full", sweep_id)
        return []
    asking = studies.to_ask(study.loaded(), plan, asked_before=sweep.trials_created)
    clock.mark("load")
    asked: list[Any] = []
    try:
        for _ in range(wanted):
            asked.append(studies.ask(asking, plan))
    except Exception:
        for trial in asked:
            study.tell(number=trial.number, status="failed", value=None)
        raise
    clock.mark("ask")
    lock_tenant(session, sweep.tenant_id)
    room = _queue_room(session, sweep.tenant_id)
    clock.mark("quota")
    made = []
    for index, trial in enumerate(asked):
        if index >= room:  # the tenant's other jobs filled its quota meanwhile: this trial is told failed
            study.tell(number=trial.number, status="failed", value=None)
            continue
        made.append(_new_trial(session, sweep, trial, study, clock))
    rows.count_created(session, sweep_id=sweep_id, created=sweep.trials_created + len(made))
    return made


class _Clock:
    """Where a step's time goes: seconds by part, summed over a part's repeats."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self._into, self._last = into, time.perf_counter()

    def mark(self, name: str) -> None:
        if self._into is not None:
            now = time.perf_counter()
            self._into[name] = self._into.get(name, 0.0) + now - self._last
            self._last = now


def dispatch(made: list[NewTrial], *, redis_client: Any, ttl_s: int | None = None) -> None:
    """After the step's commit: each new trial's `queued` event, then its turn on its queue. Neither failing loses
    the trial: its row is queued in SQL, and the workers' turn keeper (workers/scheduling.py) gives a queued job
    whose message was lost a turn of its own."""
    for trial in made:
        try:
            announce_and_enqueue(redis_client, trial.job_id, kind="fit", queue=trial.queue, priority=trial.priority,
                                 ttl_s=ttl_s)
        except Exception:
            log.exception("could not queue trial job %s; the turn keeper will", trial.job_id)
