"""Server-Sent Event streams read from a Redis stream, shared by the job and sweep event routes: where a client
resumes (`Last-Event-ID` or `?after=`), the follow loop with its heartbeats and connection lifetime, and a response
that gives its stream slot back however it ends."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.core import events
from app.core.errors import Problem
from app.core.settings import Settings

STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
# What a quiet block does besides the heartbeat: the messages to send, and whether the stream ends after them.
Quiet = Callable[[float], Awaitable[tuple[list[bytes], bool]]]


def resume_from(last_event_id: str | None, after: str | None) -> str:
    """The stream id after which a client resumes ('0-0': from the start); a 422 for anything but an event id."""
    resume = last_event_id or after or "0-0"
    if not STREAM_ID.match(resume):
        raise Problem(
            422,
            "Invalid Event Id",
            f"Last-Event-ID {resume!r} is not an event id from this stream (they look like 1700000000000-0).",
        )
    return resume


async def resume_point(
    last_event_id: str | None = Header(None, alias="Last-Event-ID", description="Resume after this event id"),
    after: str | None = Query(
        None,
        description="Same as the Last-Event-ID header, for clients that cannot set headers",
        examples=["1764284401500-0"],
    ),
) -> str:
    """`Depends(resume_point)`: where the client resumes, from the header or the query (a 422 for a wrong id)."""
    return resume_from(last_event_id, after)


def hint(retry_ms: int, comment: str) -> bytes:
    return f"retry: {retry_ms}\n: {comment}\n\n".encode()


async def _nothing(_now: float) -> tuple[list[bytes], bool]:
    return [], False


# Written here, not taken from a library: bench/sse_delivery.py measured one stream delivering 0.6 to 0.8 of these
# events per second through sse-starlette's EventSourceResponse (0.7 to 0.86 given these same bytes) and 0.2 to
# 0.34 through FastAPI's own fastapi.sse (whose fixed 15 s ": ping" could not carry KERASD_SSE_HEARTBEAT_S either);
# the figures are in docs/performance.md.
async def follow(
    request: Request,
    config: Settings,
    *,
    key: str,
    after: str,
    ends: Callable[[dict[str, Any]], bool],
    quiet: Quiet = _nothing,
) -> AsyncIterator[bytes]:
    """The events of the Redis stream `key` after `after`, then live ones, as SSE messages, until an event `ends`
    says is the last with nothing after it, the client leaves, or the connection's lifetime is reached (a `retry:`
    hint: the client reconnects with Last-Event-ID). While nothing comes, a heartbeat every KERASD_SSE_HEARTBEAT_S
    and whatever `quiet` adds."""
    client = request.app.state.redis_async
    opened = last_sent = time.monotonic()
    block_ms = max(50, int(min(1.0, config.sse_heartbeat_s) * 1000))
    async for event in events.follow(client, key, after=after, block_ms=block_ms):
        now = time.monotonic()
        if event is not None:
            yield events.sse_format(event)
            last_sent = now
            # A job retried after it ended has more events after this one: a late subscriber gets those too.
            if ends(event) and not await events.has_events_after(client, key, event["id"]):
                return
            if now - opened >= config.sse_max_connection_s:
                yield hint(config.sse_retry_ms, "connection lifetime reached: reconnect with Last-Event-ID")
                return
            continue
        if await request.is_disconnected():
            return
        if now - opened >= config.sse_max_connection_s:
            yield hint(config.sse_retry_ms, "connection lifetime reached: reconnect with Last-Event-ID")
            return
        if now - last_sent >= config.sse_heartbeat_s:
            last_sent = now
            yield b": heartbeat\n\n"
        messages, stop = await quiet(now)
        for message in messages:
            yield message
        if stop:
            return


async def seen_to_the_end(client: Any, key: str, after: str, terminal: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether a client resuming after `after` already has the stream's terminal event (nothing after it, and the
    stream's last event is one of `terminal`): it gets a 204, which tells EventSource to stop."""
    if await events.has_events_after(client, key, after):
        return False
    last = await events.last_event(client, key)
    return last is not None and last["type"] in terminal


class SlotStreamingResponse(StreamingResponse):
    """A stream that gives its slot back when it ends, however it ends (a generator never started would not)."""

    def __init__(self, content: AsyncIterator[bytes], *, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
