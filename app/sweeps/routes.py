"""Sweeps: submit a hyperparameter search, read it with its trials and best so far, list, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.core.database import get_session, get_sessionmaker
from app.core.settings import Settings
from app.core.sweep_steps import dispatch
from app.http import sse
from app.http.admission import stream_slots
from app.http.auth import Caller, current_caller
from app.http.deps import decode_cursor, encode_cursor, feasibility_checks, settings, spec_checker
from app.http.problems import problem_responses
from app.http.sessions import SessionReleasingRoute
from app.jobs import service as job_service
from app.jobs.dispatch import announce_cancel, send_job
from app.jobs.schemas import JobCreate, JobOut
from app.specchecker.pool import SpecChecker
from app.sweeps import repository, service, stream
from app.sweeps.schemas import SweepCreate, SweepOut, SweepPage, SweepSummary, TrialAsk, TrialAsked, TrialFailure

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
                                          queue_base=config.queue, **feasibility_checks(request, config))
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
                         "It is refused as POST /v1/jobs refuses a job the workers seen could never run (a backend "
                         "none runs, more GPUs than any has). A trial number never asked for is a 404; a trial that "
                         "has its job already, or was counted failed without one, is a 409.")
def submit_trial_job(sweep_id: str, number: int, body: JobCreate, request: Request,
                     session: Session = Depends(get_session), checker: SpecChecker = Depends(spec_checker),
                     config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> Any:
    job = service.submit_trial_job(session, tenant_id=caller.tenant_id, sweep_id=sweep_id, number=number, body=body,
                                   checker=checker, max_attempts=config.max_attempts, queue_base=config.queue,
                                   **feasibility_checks(request, config))
    answer = job_service.job_answer(session, tenant_id=caller.tenant_id, job_id=job.id)
    session.commit()
    send_job(request.app.state.redis_sync, session, job, config, what="trial's job")
    return answer


@router.post("/{sweep_id}/trials/{number}/fail", response_model=SweepOut,
             summary="Report that a client sweep's asked trial will have no job, and why",
             description="For a trial whose model the client could not build, or whose job was refused (what "
                         "`kerasd.tuner` reports when `build_model(hp)` raises): Optuna's study is told the trial "
                         "failed, so the search counts its values failed and its place is free at once, and the "
                         "sweep shows it under `failed_asks` with `reason`. A trial number never asked for is a 404; "
                         "one that has its job (its job's end is the trial's: cancel the job), or was counted failed "
                         "already, is a 409.")
def fail_trial(sweep_id: str, number: int, body: TrialFailure, session: Session = Depends(get_session),
               caller: Caller = Depends(current_caller)) -> SweepOut:
    service.fail_trial(session, tenant_id=caller.tenant_id, sweep_id=sweep_id, number=number, reason=body.reason)
    session.commit()
    return service.sweep_answer(session, tenant_id=caller.tenant_id, sweep_id=sweep_id)


def _answer(tenant_id: str, sweep_id: str) -> SweepOut:
    with get_sessionmaker()() as session:
        return service.sweep_answer(session, tenant_id=tenant_id, sweep_id=sweep_id)


async def _sweep_stream(request: Request, sweep_id: str, after: str, config: Settings,
                        look: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    async def quiet(_now: float) -> tuple[list[bytes], bool]:
        await look()  # what changed in SQL since the last look is published, then followed like any event
        return [], False

    yield sse.hint(config.sse_retry_ms, f"events of sweep {sweep_id}")
    async for message in sse.follow(request, config, key=stream.stream_key(sweep_id), after=after,
                                    ends=lambda event: event["type"] in stream.TERMINAL, quiet=quiet):
        yield message


@router.get("/{sweep_id}/events", response_class=StreamingResponse,
            summary="A sweep's trials as they are queued, run and end, as Server-Sent Events, with replay",
            description="Every event of the sweep from the start (or after `Last-Event-ID`), then live ones: a "
                        "`trial` event whenever a trial's status or objective changes (its `data` is the trial as "
                        "`GET /v1/sweeps/{id}` shows it), and a last `sweep` event (`status`, `counts`, `best`) "
                        "when the sweep has ended and every trial is counted; then the stream ends. Each message "
                        "has an `id:` (`1700000000000-0`, growing): a client that reconnects with it as "
                        "`Last-Event-ID` (or `?after=`) gets only what came after, and one that already has the "
                        "`sweep` event gets `204 No Content`. Heartbeats, the connection's lifetime and the limits "
                        "on open streams are those of `GET /v1/jobs/{id}/events`.",
            responses={200: {"description": "The event stream", "content": {"text/event-stream": {
                "schema": {"type": "string"}}}},
                204: {"description": "The sweep has ended and the client already has its `sweep` event: stop"},
                422: {**problem_responses(422)[422], "description": "`Last-Event-ID` is not an event id"}})
async def get_sweep_events(sweep_id: str, request: Request, config: Settings = Depends(settings),
                           caller: Caller = Depends(current_caller),
                           resume: str = Depends(sse.resume_point)) -> Response:
    first = await run_in_threadpool(_answer, caller.tenant_id, sweep_id)  # another tenant's sweep: a 404
    client = request.app.state.redis_async

    async def look() -> None:
        await stream.publish_changes(client, sweep_id, lambda: run_in_threadpool(_answer, caller.tenant_id, sweep_id),
                                     ttl_s=config.event_stream_ttl_s)

    await look()
    if stream.ended(first) and await sse.seen_to_the_end(client, stream.stream_key(sweep_id), resume,
                                                         stream.TERMINAL):
        return Response(status_code=204)
    slots = stream_slots(request.app.state)
    slots.take(caller.tenant_id)
    return sse.SlotStreamingResponse(_sweep_stream(request, sweep_id, resume, config, look),
                                     release=lambda: slots.give_back(caller.tenant_id),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
