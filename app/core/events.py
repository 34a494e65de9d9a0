"""The job event contract (DESIGN.md §8): one Redis Stream per job, typed events with a schema version.

Writers (the API for `queued`, the worker for everything after) and the reader (the SSE route) share
this module so the wire format is defined once. The Redis stream id is the event's sequence id: it only
grows, so `Last-Event-ID` is simply where XREAD resumes.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis

# The terminal events and the job status each reports are the one map's (app/core/statuses.py), part of this
# contract as well: readers of events find them here.
from app.core.statuses import TERMINAL_EVENT_OF_STATUS as TERMINAL_EVENT_OF_STATUS
from app.core.statuses import TERMINAL_EVENTS as TERMINAL_EVENTS

SCHEMA_VERSION = 1
EVENT_TYPES = ("queued", "started", "batch", "epoch", "checkpoint", "log", *TERMINAL_EVENTS)

# The contract as users read it: in the OpenAPI description of GET /v1/jobs/{id}/events and the README.
CONTRACT_MARKDOWN = """
Each SSE message is `id: <sequence id>`, `event: <type>` and one `data:` line of JSON:

| field | meaning |
|---|---|
| `v` | schema version, now `1`; a change that breaks readers bumps it |
| `id` | the sequence id (`1700000000000-0`): grows with every event of the job; to resume, send \
the last one you saw back as `Last-Event-ID` (or `?after=`) |
| `type` | one of the types below (also the SSE `event:` name) |
| `job_id` | the job |
| `attempt` | the worker attempt that published it (`0` for `queued`) |
| `ts` | when it happened, ISO 8601 UTC |
| `data` | the type's own fields |

| type | `data` |
|---|---|
| `queued` | `kind` |
| `started` | `attempt`, `worker` |
| `batch` | `epoch` (0-based), `step` (batches done this epoch), `steps`, `logs` (Keras's batch logs: \
running loss and metrics), `steps_per_s`, `samples_per_s` (when the batch size is known), `eta_s` (to the \
end of the epoch); about one per `KERASD_BATCH_EVENT_INTERVAL_S` (default 0.5 s), at the end of a step, \
or of an execution of several steps (execution tuning): then a little more often, so one still comes at least \
that often |
| `epoch` | `epoch` (0-based), `epochs`, `logs` (every Keras epoch log, validation included), `seconds` |
| `checkpoint` | `epoch`, `kind`, `name`, `size_bytes`: the model's state was saved after that epoch; \
`kind` `resume` is the worker's own checkpoint (`resume.keras`, every `KERASD_CHECKPOINT_EVERY_EPOCHS`), from \
which a later attempt resumes; `declared` is a declared `ModelCheckpoint`'s file, an artifact of that \
`name` when the job ends |
| `log` | `level` (`info`, `warning`), `message`: what the worker wants a user to read (what fit will run, \
Python warnings Keras raised while building or training) |
| `finished` | `status` (`succeeded`), `result` (a fit's `history`, Keras's `History.history`, and \
`epochs_run`; an evaluate's `evaluation`; a predict's `predictions`), `artifacts` (names to download) |
| `failed` | `status`, `error` (`type`, `message`: Keras's own exception), `result` |
| `cancelled` | `status`, `result` (what the job had done when it stopped; its epochs stay in its history), \
`artifacts`; or `while: queued` when it was cancelled before it started |

`finished`, `failed` and `cancelled` are terminal: the server ends the stream after one (unless the job
was retried since: then the new attempt's events follow, from its `queued` on). A client that
already has the terminal event and reconnects gets `204 No Content`, which tells `EventSource` to stop.
Events replay from the start for any subscriber, however late: a stream keeps every event for
`KERASD_EVENT_STREAM_TTL_S` after its last one, except batch events, of which each attempt keeps its newest
`KERASD_EVENT_STREAM_MAXLEN`. If a finished job's stream has expired, its epochs and end are replayed from
SQL (those events carry `"id": null` and `"replayed": true`).
While nothing happens the server sends a `: heartbeat` comment every `KERASD_SSE_HEARTBEAT_S`; after
`KERASD_SSE_MAX_CONNECTION_S` it closes the connection after a `retry:` hint, and the client reconnects
with `Last-Event-ID` and misses nothing.
"""


def stream_key(job_id: str) -> str:
    return f"kerasd:job:{job_id}:events"


def iso_utc(timestamp: float | None = None) -> str:
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat()


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a diverging loss) as null: JSON has no such numbers and browsers reject them."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def encode(job_id: str, event_type: str, data: dict[str, Any], *, attempt: int = 0,
           ts: float | None = None) -> dict[str, str]:
    """The stream entry of one event; `ts` (seconds since the epoch) defaults to now."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return {
        "v": str(SCHEMA_VERSION),
        "type": event_type,
        "job_id": job_id,
        "attempt": str(attempt),
        "ts": iso_utc(ts),
        "data": json.dumps(_json_safe(data), default=float),
    }


def decode(stream_id: bytes | str, fields: dict[Any, Any]) -> dict[str, Any]:
    """An event as its stream holds it: a job's (`job_id`, `attempt`), or a sweep's (`sweep_id`,
    app/sweeps/stream.py), which shares this format and these readers."""
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()}
    event: dict[str, Any] = {"id": stream_id.decode() if isinstance(stream_id, bytes) else stream_id,
                             "v": int(text["v"]), "type": text["type"]}
    if "job_id" in text:
        event["job_id"] = text["job_id"]
        event["attempt"] = int(text.get("attempt", 0))
    else:
        event["sweep_id"] = text["sweep_id"]
    event["ts"] = text["ts"]
    event["data"] = json.loads(text["data"])
    return event


def publish(client: redis.Redis, job_id: str, event_type: str, data: dict[str, Any], *, attempt: int = 0,
            maxlen: int | None = None, ttl_s: int | None = None) -> None:
    """One synchronous XADD; for the worker's hot path use workers.progress, which batches off-thread.

    Streams are never trimmed by length (that would drop `queued` and the first epochs for a late
    subscriber): only old batch events are deleted, by the worker's publisher. `maxlen` is accepted for
    callers that pass the setting and means that cap on batch events.
    """
    pipe = client.pipeline(transaction=False)
    pipe.xadd(stream_key(job_id), encode(job_id, event_type, data, attempt=attempt))
    if ttl_s is not None:
        pipe.expire(stream_key(job_id), ttl_s)
    pipe.execute()


def sse_format(event: dict[str, Any]) -> bytes:
    """One SSE message; an event replayed from SQL has no sequence id, so it sends no `id:` line."""
    head = f"id: {event['id']}\n" if event.get("id") else ""
    return f"{head}event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def replayed(job_id: str, event_type: str, data: dict[str, Any], *, attempt: int, ts: datetime | None) -> dict:
    """An event rebuilt from SQL for a job whose Redis stream is gone."""
    return {"id": None, "v": SCHEMA_VERSION, "type": event_type, "job_id": job_id, "attempt": attempt,
            "ts": (ts or datetime.now(UTC)).isoformat(), "data": data, "replayed": True}


async def last_event(client: aioredis.Redis, key: str) -> dict[str, Any] | None:
    """The newest event of the Redis stream `key` (a job's: stream_key(job_id); a sweep's, app/sweeps/stream.py)."""
    entries = await client.xrevrange(key, count=1)
    return decode(*entries[0]) if entries else None


async def has_events_after(client: aioredis.Redis, key: str, after: str) -> bool:
    return bool(await client.xrange(key, min=f"({after}", count=1))


async def follow(client: aioredis.Redis, key: str, *, after: str = "0-0",
                 block_ms: int = 1000) -> AsyncIterator[dict[str, Any] | None]:
    """Events of the Redis stream `key` after `after`, then live ones as they come; yields None when a block passes
    with nothing."""
    last = after
    while True:
        reply = await client.xread({key: last}, count=500, block=block_ms)
        if not reply:
            yield None
            continue
        for stream_id, fields in reply[0][1]:
            event = decode(stream_id, fields)
            last = event["id"]
            yield event
