"""Sweeps: submit a hyperparameter search, read it with its trials and best so far, list, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.core import events
from app.core.database import get_session, get_sessionmaker
from app.core.settings import Settings
from app.core.sweep_steps import dispatch
from app.http.auth import Caller, current_caller
from app.http.deps import decode_cursor, encode_cursor, settings, spec_checker
from app.http.sessions import SessionReleasingRoute
from app.jobs import feasibility
from app.jobs import service as job_service
from app.jobs.dispatch import announce_cancel, send_job
from app.jobs.schemas import JobCreate, JobOut
from app.specchecker.pool import SpecChecker
from app.sweeps import repository, service
from app.sweeps.schemas import SweepCreate, SweepOut, SweepPage, SweepSummary, TrialAsk, TrialAsked

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"], route_class=SessionReleasingRoute)


@router.post("", response_model=SweepOut, status_code=status.HTTP_201_CREATED,
             summary="Start a hyperparameter search whose trials are fit jobs",
             description="The base job is checked as POST /v1/jobs checks a job, and again with the space's values "
                         "at both ends of every dimension (a model path also through the model checks): a path "
                         "that is not in the base job, or a value a job would be refused with, is a 422 naming it, "
                         "and nothing is stored. Optuna's sampler (random, grid, tpe) chooses each trial's values; "
                         "up to `max_concurrent` trials are queued or running at once, as ordinary jobs of yours "
                         "(same queue, fairness and quotas), until `max_trials`.")
def create_sweep(body: SweepCreate, request: Request, session: Session = Depends(get_session),
                 checker: SpecChecker = Depends(spec_checker), config: Settings = Depends(settings),
                 caller: Caller = Depends(current_caller)) -> SweepOut:
    sweep_id, made = service.create_sweep(session, tenant_id=caller.tenant_id, body=body, checker=checker,
                                          max_params=config.max_model_params, max_attempts=config.max_attempts,
                                          queue_base=config.queue, backends_seen=lambda: feasibility.seen_backends(
                                              request.app.state.redis_sync, config.queue))
    session.commit()
    dispatch(made, redis_client=request.app.state.redis_sync)
    return service.sweep_answer(session, tenant_id=caller.tenant_id, sweep_id=sweep_id)


@router.get("", response_model=SweepPage, summary="List sweeps, newest first, a page at a time",
            description="Each sweep's status, objective, counts of trials by status and best trial so far; pass "
                        "`next_cursor` as `cursor` for the next page (null on the last).")
def list_sweeps(limit: int = Query(50, ge=1, le=500),
                cursor: str | None = Query(None, max_length=600, description="`next_cursor` of the page before"),
                session: Session = Depends(get_session), caller: Caller = Depends(current_caller)) -> SweepPage:
    after = decode_cursor(cursor) if cursor is not None else None
    rows = repository.page(session, tenant_id=caller.tenant_id, limit=limit + 1, after=after)
    items = [SweepSummary(id=row.id, name=row.name, status=row.status, algorithm=row.plan["algorithm"],
                          objective={"metric": row.plan["metric"], "direction": row.plan["direction"]},
                          trials_created=row.trials_created, created_at=row.created_at, finished_at=row.finished_at)
             for row in rows[:limit]]
    more = len(rows) > limit
    return SweepPage(items=items, limit=limit,
                     next_cursor=encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if more else None)


@router.get("/{sweep_id}", response_model=SweepOut, summary="A sweep: its trials, their values and objectives, the "
            "best so far", description="Every trial with its job id, status, the values it was given and the objective "
            "it reached; another tenant's sweep is a 404.")
def get_sweep(sweep_id: str, session: Session = Depends(get_session),
              caller: Caller = Depends(current_caller)) -> SweepOut:
    return service.sweep_answer(session, tenant_id=caller.tenant_id, sweep_id=sweep_id)


@router.post("/{sweep_id}/cancel", response_model=SweepOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Cancel a sweep: no new trials; queued trials are cancelled, running ones stop at their next "
                     "batch", description="The sweep ends `cancelled`; its trials' jobs end `cancelled` as "
                                          "POST /v1/jobs/{id}/cancel ends a job. A sweep that already ended is a 409.")
def cancel_sweep(sweep_id: str, request: Request, session: Session = Depends(get_session),
                 config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> SweepOut:
    outcomes = service.cancel_sweep(session, tenant_id=caller.tenant_id, sweep_id=sweep_id)
    session.commit()
    for job_id, outcome in outcomes:
        announce_cancel(request.app.state.redis_sync, job_id, outcome, config)
    return service.sweep_answer(session, tenant_id=caller.tenant_id, sweep_id=sweep_id)


@router.post("/{sweep_id}/trials", response_model=TrialAsked, status_code=status.HTTP_201_CREATED,
             summary="Ask a client sweep for a trial's values in the space the client declares",
             description="For a sweep created with `space_from: client` (what `kerasd.tuner` makes): Optuna's sampler "
                         "chooses a value for each dimension of `space` (the client's hyperparameters by name; the "
                         "space may grow from one ask to the next) and the trial is counted against the budget. The "
                         "client then builds its model with those values and submits the trial's job at "
                         "POST /v1/sweeps/{id}/trials/{number}/job. A sweep made from a job, or one that ended, is a "
                         "409; a spent budget (max_trials or the time limit) is a 409 `Sweep Budget Spent`; another "
                         "tenant's sweep is a 404. Concurrency is the client's to pace (`max_concurrent` is what "
                         "kerasd.tuner keeps running).")
def ask_trial(sweep_id: str, body: TrialAsk, session: Session = Depends(get_session),
              caller: Caller = Depends(current_caller)) -> TrialAsked:
    asked = service.ask_trial(session, tenant_id=caller.tenant_id, sweep_id=sweep_id, body=body)
    session.commit()
    return asked


@router.post("/{sweep_id}/trials/{number}/job", response_model=JobOut, status_code=status.HTTP_201_CREATED,
             summary="Submit the fit job of a client sweep's trial",
             description="The job, as POST /v1/jobs takes it (a fit job: the model the client built with the trial's "
                         "values, by model id, and its compile and fit arguments), is checked and queued as "
                         "POST /v1/jobs does, and becomes the trial: its epochs' objective goes to the sweep's "
                         "pruner (a pruned trial ends `pruned`), its end to the sweep, its values join its params. "
                         "A trial number never asked for is a 404; a trial that has its job already, or whose ask "
                         "waited too long and was counted failed, is a 409.")
def submit_trial_job(sweep_id: str, number: int, body: JobCreate, request: Request,
                     session: Session = Depends(get_session), checker: SpecChecker = Depends(spec_checker),
                     config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> Any:
    job = service.submit_trial_job(session, tenant_id=caller.tenant_id, sweep_id=sweep_id, number=number, body=body,
                                   checker=checker, max_attempts=config.max_attempts, queue_base=config.queue)
    answer = job_service.job_answer(session, tenant_id=caller.tenant_id, job_id=job.id)
    session.commit()
    send_job(request.app.state.redis_sync, session, job, config, what="trial's job")
    return answer


def _answer(tenant_id: str, sweep_id: str) -> SweepOut:
    with get_sessionmaker()() as session:
        return service.sweep_answer(session, tenant_id=tenant_id, sweep_id=sweep_id)


def _message(event_type: str, sweep_id: str, data: dict[str, Any]) -> bytes:
    body = {"type": event_type, "sweep_id": sweep_id, "ts": events.iso_utc(), "data": data}
    return f"event: {event_type}\ndata: {json.dumps(body, default=str)}\n\n".encode()


def _ended(sweep: SweepOut) -> bool:
    return sweep.status != "running" and all(t.objective is not None or t.note for t in sweep.trials)


async def _sweep_stream(request: Request, first: SweepOut, tenant_id: str, config: Settings) -> AsyncIterator[bytes]:
    opened = last_sent = time.monotonic()
    seen: dict[int, tuple[str, float | None]] = {}
    sweep = first
    yield f"retry: {config.sse_retry_ms}\n: events of sweep {sweep.id}\n\n".encode()
    while True:
        for trial in sweep.trials:
            state = (trial.status, trial.objective)
            if seen.get(trial.number) != state:
                seen[trial.number] = state
                last_sent = time.monotonic()
                yield _message("trial", sweep.id, trial.model_dump(mode="json"))
        if _ended(sweep):
            yield _message("sweep", sweep.id, {"status": sweep.status, "counts": sweep.counts,
                                               "best": sweep.best.model_dump(mode="json") if sweep.best else None})
            return
        now = time.monotonic()
        if now - opened >= config.sse_max_connection_s:
            yield f"retry: {config.sse_retry_ms}\n: connection lifetime reached: reconnect\n\n".encode()
            return
        if now - last_sent >= config.sse_heartbeat_s:
            last_sent = now
            yield b": heartbeat\n\n"
        await asyncio.sleep(SWEEP_POLL_S)
        if await request.is_disconnected():
            return
        sweep = await run_in_threadpool(_answer, tenant_id, sweep.id)


# A sweep's trials change at the pace of epochs, not batches: its stream reads the sweep from SQL this often.
SWEEP_POLL_S = 1.0


@router.get("/{sweep_id}/events", response_class=StreamingResponse,
            summary="A sweep's trials as they are queued, run and end, as Server-Sent Events",
            description="First every trial as it stands, then a `trial` event whenever a trial's status or "
                        "objective changes (its `data` is the trial as `GET /v1/sweeps/{id}` shows it), and a last "
                        "`sweep` event (`status`, `counts`, `best`) when the sweep has ended and every trial is "
                        "counted; then the stream ends. A client that reconnects gets the trials as they stand "
                        "again, so it misses nothing (the events carry no ids to resume from).",
            responses={200: {"description": "The event stream", "content": {"text/event-stream": {
                "schema": {"type": "string"}}}}})
async def get_sweep_events(sweep_id: str, request: Request, config: Settings = Depends(settings),
                           caller: Caller = Depends(current_caller)) -> StreamingResponse:
    first = await run_in_threadpool(_answer, caller.tenant_id, sweep_id)
    return StreamingResponse(_sweep_stream(request, first, caller.tenant_id, config), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
