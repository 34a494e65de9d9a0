"""The live event stream of a job as Server-Sent Events, with replay from `Last-Event-ID`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.core import events
from app.core.contract import JobRequest
from app.core.database import get_sessionmaker
from app.core.errors import Problem, not_found
from app.core.settings import Settings
from app.core.sql import ask
from app.core.statuses import TERMINAL_STATUSES
from app.events.schemas import JobEvent
from app.http import sse
from app.http.admission import stream_slots
from app.http.auth import Caller, current_caller
from app.http.deps import settings
from app.http.openapi import COMPONENT
from app.http.problems import problem_responses
from app.http.reads import answer
from app.jobs import repository

router = APIRouter(prefix="/v1/jobs", tags=["events"])


@dataclass
class JobState:
    status: str
    attempt: int
    finished_at: Any = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    epochs_total: int | None = None
    epochs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)


def _job_state(job_id: str, *, with_history: bool = False) -> JobState | None:
    with get_sessionmaker()() as session:
        job = ask(session, repository.job_state(job_id=job_id))
        if job is None:
            return None
        state = JobState(status=job.status, attempt=job.attempt, finished_at=job.finished_at, error=job.error,
                         result=job.result, epochs_total=JobRequest.model_validate(job.request).epochs)
        if with_history:
            state.epochs = ask(session, repository.epoch_logs(job_id=job_id))
            state.artifacts = [row.name for row in ask(session, repository.artifacts_of(job_id=job_id))]
        return state


async def _status(job_id: str) -> str | None:
    """The job's status, or None: on the event loop's read connections (app/http/reads.py), without a thread, an ORM
    session or the job's request validated. Each open stream asks it every 5 s: with 100 streams open, the thread
    and session of `_job_state` were a fifth of the API's CPU (bench/abuse.py's stream flood)."""
    [state] = await answer(repository.job_state(job_id=job_id))
    return None if state is None else state.status


def _replay_from_sql(job_id: str, state: JobState, *, with_epochs: bool) -> list[dict[str, Any]]:
    """Epoch and terminal events rebuilt from SQL, for a finished job whose Redis stream is gone."""
    replay = []
    if with_epochs:
        replay = [events.replayed(job_id, "epoch", {"epoch": epoch, "epochs": state.epochs_total, "logs": logs},
                                  attempt=state.attempt, ts=None) for epoch, logs in state.epochs]
    # The same fields the worker publishes at the end (workers/runner.py).
    data = {"status": state.status, "result": state.result, "error": state.error, "artifacts": state.artifacts}
    replay.append(events.replayed(job_id, events.TERMINAL_EVENT_OF_STATUS[state.status], data,
                                  attempt=state.attempt, ts=state.finished_at))
    return replay


class _Drain:
    """A job that ended while its stream was lost (Redis restarted, stream expired, a worker killed before it
    published) would keep the client waiting for a terminal event that never comes. The worker commits the status
    before it publishes, so one more quiet block after SQL shows it ended, its end comes from SQL."""

    def __init__(self, job_id: str, opened: float) -> None:
        self.job_id = job_id
        self.last_sql_check = opened
        self.draining = False

    async def __call__(self, now: float) -> tuple[list[bytes], bool]:
        if self.draining:
            state = await run_in_threadpool(_job_state, self.job_id, with_history=True)
            if state is not None and state.status in events.TERMINAL_EVENT_OF_STATUS:
                return [events.sse_format(_replay_from_sql(self.job_id, state, with_epochs=False)[-1])], True
            return [], True
        if now - self.last_sql_check >= 5:
            self.last_sql_check = now
            status = await _status(self.job_id)
            self.draining = status is None or status in TERMINAL_STATUSES
        return [], False


def _ends(event: dict[str, Any]) -> bool:
    return event["type"] in events.TERMINAL_EVENTS


async def _event_stream(request: Request, job_id: str, after: str, config: Settings,
                        prelude: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield sse.hint(config.sse_retry_ms, f"events of job {job_id}")
    for event in prelude:
        yield events.sse_format(event)
    if prelude:
        return
    async for message in sse.follow(request, config, key=events.stream_key(job_id), after=after, ends=_ends,
                                    quiet=_Drain(job_id, time.monotonic())):
        yield message


EVENT_EXAMPLE = (
    "retry: 1000\n\n"
    "id: 1764284400000-0\nevent: queued\n"
    'data: {"id": "1764284400000-0", "v": 1, "type": "queued", "job_id": "0123456789abcdef0123456789abcdef", '
    '"attempt": 0, "ts": "2026-11-28T00:00:00+00:00", "data": {"kind": "fit"}}\n\n'
    "id: 1764284401500-0\nevent: batch\n"
    'data: {"id": "1764284401500-0", "v": 1, "type": "batch", "job_id": "0123456789abcdef0123456789abcdef", '
    '"attempt": 1, "ts": "2026-11-28T00:00:01.500000+00:00", "data": {"epoch": 0, "step": 4, "steps": 10, '
    '"logs": {"loss": 2.31, "categorical_accuracy": 0.1}, "steps_per_s": 80.0, "samples_per_s": 8000.0, '
    '"eta_s": 0.075}}\n\n'
    "id: 1764284401600-0\nevent: epoch\n"
    'data: {"id": "1764284401600-0", "v": 1, "type": "epoch", "job_id": "0123456789abcdef0123456789abcdef", '
    '"attempt": 1, "ts": "2026-11-28T00:00:01.600000+00:00", "data": {"epoch": 0, "epochs": 10, "logs": '
    '{"loss": 2.30, "categorical_accuracy": 0.11, "val_loss": 2.31, "val_categorical_accuracy": 0.09}, '
    '"seconds": 0.21}}\n\n'
)
# The body in OpenAPI 3.1 terms: text. Each message's data is a JobEvent, named by `x-item-schema` (OpenAPI 3.2
# calls this `itemSchema`, which a 3.1 document may not carry); the component itself is app/events/schemas.py.
EVENT_STREAM = {"schema": {"type": "string", "description": "Server-Sent Events: each message's `data:` line is a "
                                                            "JobEvent as JSON"},
                "x-item-schema": {"$ref": COMPONENT.format(model="JobEvent"),
                                  "$defs": {"JobEvent": JobEvent.model_json_schema(ref_template=COMPONENT)}},
                "example": EVENT_EXAMPLE}


@router.get(
    "/{job_id}/events",
    summary="Live progress as Server-Sent Events, with replay (tutorial §3.2: watch fit's epochs)",
    description="Every event of the job from the start (or after `Last-Event-ID`), then live ones as they "
                "happen, until the terminal event. Follow it with `curl -N`, or `new EventSource(url)` in a "
                "browser (it resumes by itself).\n" + events.CONTRACT_MARKDOWN,
    response_class=StreamingResponse,
    responses={
        200: {"description": "The event stream", "content": {"text/event-stream": EVENT_STREAM}},
        204: {"description": "The job has ended and the client already has its terminal event: stop"},
        404: {**problem_responses(404)[404], "description": "No such job"},
        422: {**problem_responses(422)[422], "description": "`Last-Event-ID` is not an event id"},
    },
)
async def get_job_events(request: Request, job_id: str, config: Settings = Depends(settings),
                         caller: Caller = Depends(current_caller), resume: str = Depends(sse.resume_point)) -> Response:
    # At most KERASD_MAX_STREAMS_PER_TENANT of the tenant's streams and KERASD_MAX_STREAMS_PER_PROCESS in all: one
    # more is a 429 or 503 with Retry-After here, before its 200, never a stream cut after it, and before any SQL
    # (50 refused streams retrying every second cost the API two SQL round trips each).
    slots = stream_slots(request.app.state)
    slots.take(caller.tenant_id)
    try:
        prelude = await _prelude(request, job_id, caller, resume)
    except BaseException:
        slots.give_back(caller.tenant_id)
        raise
    if prelude is None:
        slots.give_back(caller.tenant_id)
        return Response(status_code=204)
    return sse.SlotStreamingResponse(_event_stream(request, job_id, resume, config, prelude),
                                     release=lambda: slots.give_back(caller.tenant_id), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _prelude(request: Request, job_id: str, caller: Caller, resume: str) -> list[dict[str, Any]] | None:
    """What a stream sends before following Redis (an ended job's end from SQL when its stream is gone), or None
    when the client already has the job's terminal event (a 204)."""
    # Another tenant's job is answered exactly as a missing one.
    [owned] = await answer(repository.owns_job(job_id=job_id, tenant_id=caller.tenant_id))
    if not owned:
        raise not_found("job", job_id)
    status = await _status(job_id)
    if status is None:
        raise Problem(404, "Not Found", f"No job with id {job_id!r}. List them with GET /v1/jobs.")
    prelude: list[dict[str, Any]] = []
    if status in events.TERMINAL_EVENT_OF_STATUS:
        client = request.app.state.redis_async
        key = events.stream_key(job_id)
        if not await events.has_events_after(client, key, resume):
            last = await events.last_event(client, key)
            if last is not None and last["type"] in events.TERMINAL_EVENTS:
                return None
            # The stream is gone or never got its end: what SQL knows, so the client still sees the end.
            full = await run_in_threadpool(_job_state, job_id, with_history=True)
            prelude = _replay_from_sql(job_id, full, with_epochs=last is None and resume == "0-0")
    return prelude
