"""The live event stream of a job as Server-Sent Events, with replay from `Last-Event-ID`."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app import events
from app.db import get_sessionmaker
from app.deps import settings
from app.problems import Problem
from app.settings import Settings
from app.tables import TERMINAL_STATUSES, Job

router = APIRouter(prefix="/v1/jobs", tags=["events"])
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _job_status(job_id: str) -> str | None:
    with get_sessionmaker()() as session:
        job = session.get(Job, job_id)
        return job.status if job else None


async def _event_stream(request: Request, job_id: str, after: str, heartbeat_s: float) -> AsyncIterator[bytes]:
    client = request.app.state.redis_async
    last_beat = time.monotonic()
    last_sql_check = 0.0
    draining = False
    yield b"retry: 2000\n\n"
    async for event in events.follow(client, job_id, after=after):
        if event is not None:
            yield events.sse_format(event)
            if event["type"] in events.TERMINAL_EVENTS:
                return
            continue
        if await request.is_disconnected():
            return
        now = time.monotonic()
        if now - last_beat >= heartbeat_s:
            last_beat = now
            yield b": heartbeat\n\n"
        # A job that ended while its stream was lost (Redis restarted, stream expired) would otherwise
        # keep the client waiting for a terminal event that will never come. The worker commits the
        # status before it publishes, so one more quiet block after seeing it ends the stream.
        if draining:
            return
        if now - last_sql_check >= 5:
            last_sql_check = now
            draining = await run_in_threadpool(_job_status, job_id) in TERMINAL_STATUSES


@router.get("/{job_id}/events", summary="Live progress as Server-Sent Events, with replay",
            description="Every event of the job from the start (or after `Last-Event-ID`), then live ones "
                        "as they happen: `queued`, `started`, `batch`, `epoch`, `finished`, `failed`. Each "
                        "SSE `data` is JSON with `v` (schema version), `id`, `type`, `job_id`, `attempt`, "
                        "`ts` and `data`. The stream ends after the terminal event.",
            response_class=StreamingResponse)
async def job_events(request: Request, job_id: str,
                     last_event_id: str | None = Header(None, alias="Last-Event-ID"),
                     after: str | None = Query(None, description="Same as the Last-Event-ID header"),
                     config: Settings = Depends(settings)) -> StreamingResponse:
    if await run_in_threadpool(_job_status, job_id) is None:
        raise Problem(404, "Not Found", f"No job with id {job_id!r}. List them with GET /v1/jobs.")
    resume = last_event_id or after or "0-0"
    if not STREAM_ID.match(resume):
        raise Problem(422, "Invalid Event Id", f"Last-Event-ID {resume!r} is not an event id from this "
                      "stream (they look like 1700000000000-0).")
    return StreamingResponse(_event_stream(request, job_id, resume, config.sse_heartbeat_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
