"""The job event contract (DESIGN.md §8): one Redis Stream per job, typed events with a schema version.

Writers (the API for `queued`, the worker for everything after) and the reader (the SSE route) share
this module so the wire format is defined once. The Redis stream id is the event's sequence id: it only
grows, so `Last-Event-ID` is simply where XREAD resumes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis

SCHEMA_VERSION = 1
EVENT_TYPES = ("queued", "started", "batch", "epoch", "checkpoint", "log", "finished", "failed", "cancelled")
TERMINAL_EVENTS = ("finished", "failed", "cancelled")


def stream_key(job_id: str) -> str:
    return f"kerasd:job:{job_id}:events"


def encode(job_id: str, event_type: str, data: dict[str, Any], *, attempt: int = 0) -> dict[str, str]:
    return {
        "v": str(SCHEMA_VERSION),
        "type": event_type,
        "job_id": job_id,
        "attempt": str(attempt),
        "ts": datetime.now(UTC).isoformat(),
        "data": json.dumps(data, default=float),
    }


def decode(stream_id: bytes | str, fields: dict[Any, Any]) -> dict[str, Any]:
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()}
    return {
        "id": stream_id.decode() if isinstance(stream_id, bytes) else stream_id,
        "v": int(text["v"]),
        "type": text["type"],
        "job_id": text["job_id"],
        "attempt": int(text.get("attempt", 0)),
        "ts": text["ts"],
        "data": json.loads(text["data"]),
    }


def publish(client: redis.Redis, job_id: str, event_type: str, data: dict[str, Any], *, attempt: int = 0,
            maxlen: int = 10_000, ttl_s: int | None = None) -> None:
    """One synchronous XADD; for the worker's hot path use workers.progress, which batches off-thread."""
    pipe = client.pipeline(transaction=False)
    pipe.xadd(stream_key(job_id), encode(job_id, event_type, data, attempt=attempt), maxlen=maxlen,
              approximate=True)
    if ttl_s is not None:
        pipe.expire(stream_key(job_id), ttl_s)
    pipe.execute()


def sse_format(event: dict[str, Any]) -> bytes:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def follow(client: aioredis.Redis, job_id: str, *, after: str = "0-0",
                 block_ms: int = 1000) -> AsyncIterator[dict[str, Any] | None]:
    """Events after `after`, then live ones as they come; yields None when a block passes with nothing."""
    last = after
    while True:
        reply = await client.xread({stream_key(job_id): last}, count=500, block=block_ms)
        if not reply:
            yield None
            continue
        for stream_id, fields in reply[0][1]:
            event = decode(stream_id, fields)
            last = event["id"]
            yield event
