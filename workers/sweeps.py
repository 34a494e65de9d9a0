"""The worker's part in sweeps: report each epoch's objective to the trial's study and stop a pruned trial at the
end of that epoch; after a trial's end, and in every reaper round, run the sweeps' scheduler step
(app/core/sweep_steps.py)."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import keras
import redis

from app.core import studies
from app.core.contract import TrialLink
from app.core.database import session_scope
from app.core.repositories import sweeps as rows
from app.core.sql import ask
from app.core.sweep_steps import advance, dispatch, due

log = logging.getLogger("kerasd.sweeps")


class TrialReports(keras.callbacks.Callback):
    """Tells the study each epoch's objective; when the sweep's pruner says so, stops training at the end of this
    epoch (Keras checks `stop_training` after every callback's on_epoch_end, so the epoch is recorded and
    checkpointed first)."""

    def __init__(self, link: TrialLink) -> None:
        super().__init__()
        self.link = link
        # The sweep's plan (its pruner) is read at the first epoch's end, not before the trial's first batch.
        self.plan: dict[str, Any] | None = None
        self.pruned_at: dict[str, Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.link.metric)
        if value is None or not math.isfinite(float(value)):
            return
        try:
            if self.plan is None:
                with session_scope() as session:
                    self.plan = ask(session, rows.plan_of(sweep_id=self.link.sweep_id))
            if self.plan is None:  # the sweep is gone
                return
            prune = studies.report(
                self.plan, self.link.study, trial_id=self.link.optuna_trial_id, epoch=epoch, value=float(value)
            )
        except Exception:  # the study is away for a moment: this epoch goes unreported, training goes on
            log.exception("could not report epoch %d of sweep %s trial %d", epoch, self.link.sweep_id, self.link.number)
            return
        if prune and self.link.prune:
            self.pruned_at = {"epoch": epoch + 1, self.link.metric: float(value)}
            self.model.stop_training = True


def step(
    sweep_id: str,
    redis_client: redis.Redis,
    *,
    wait: bool = True,
    make_only: bool = False,
    timings: dict[str, float] | None = None,
) -> int:
    """One scheduler step of the sweep (app/core/sweep_steps.py's advance), its new trials queued after the commit;
    how many it made. `timings` gets where the step went (seconds)."""
    with session_scope() as session:
        made = advance(session, sweep_id=sweep_id, wait=wait, make_only=make_only, timings=timings)
        started = time.perf_counter()
    committed = time.perf_counter()
    dispatch(made, redis_client=redis_client)
    if timings is not None:
        timings.update(commit=committed - started, queue=time.perf_counter() - committed)
    return len(made)


def _parts(timings: dict[str, float]) -> str:
    return " ".join(f"{name}={seconds * 1e3:.0f}ms" for name, seconds in timings.items())


def _after_job(job_id: str, redis_client: redis.Redis, sweep_id: str | None) -> None:
    started = time.perf_counter()
    try:
        if sweep_id is None:
            with session_scope() as session:
                sweep_id = ask(session, rows.sweep_of_job(job_id=job_id))
        if sweep_id is None:
            return
        # A random or grid sweep's next trial is queued first; then the trial's end is told (and, for other
        # samplers, which choose from the ends told, the next trial made after it).
        first: dict[str, float] = {}
        made = step(sweep_id, redis_client, make_only=True, timings=first)
        then: dict[str, float] = {}
        made += step(sweep_id, redis_client, timings=then)
        log.info(
            "sweep %s: the step after job %s queued %d trial(s) in %.0f ms (%s; then %s)",
            sweep_id,
            job_id,
            made,
            (time.perf_counter() - started) * 1e3,
            _parts(first),
            _parts(then),
        )
    except Exception:  # the reaper's round takes the sweep on
        log.exception("the sweep step after job %s failed", job_id)


def after_job(job_id: str, redis_client: redis.Redis, sweep_id: str | None = None) -> threading.Thread:
    """After a trial's end, its sweep moves on now rather than at the next reaper round. `sweep_id` is the trial
    link's, when the worker read the job's request; without it, the job's row says whether it was a trial.

    The step runs in a thread of its own, so the worker takes its next job meanwhile: a trial already queued (a
    sweep with more trials at once than workers) starts without waiting for the step (its tell and ask took
    1.0-2.4 s on a busy machine). A step cut short with its worker is rolled back; the reaper's rounds take the
    sweep on (SETTLE_S after the trial's end)."""
    thread = threading.Thread(
        target=_after_job, args=(job_id, redis_client, sweep_id), name=f"sweep-step-{job_id}", daemon=True
    )
    thread.start()
    return thread


def step_all(redis_client: redis.Redis) -> None:
    """A step of every running sweep that has something to do (the reaper's round): trials lost with their worker
    are told and replaced. A sweep with nothing to do is not locked, and one another step holds is skipped, so a
    round never holds up the step after a trial's end."""
    with session_scope() as session:
        sweep_ids = ask(session, rows.running_sweeps())
    for sweep_id in sweep_ids:
        try:
            with session_scope() as session:
                if not due(session, sweep_id=sweep_id):
                    continue
            step(sweep_id, redis_client, wait=False)
        except Exception:
            log.exception("the sweep step of sweep %s failed", sweep_id)
