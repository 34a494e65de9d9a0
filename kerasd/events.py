"""Job events as the API streams them (Server-Sent Events, read with httpx-sse), parsed tolerantly.

Each SSE message carries `id` (the sequence id, sent back as `Last-Event-ID` to resume), `event` (the
type) and JSON `data`: `{v, id, type, job_id, attempt, ts, data}`. Fields the SDK does not know are kept
in `raw`; a message without JSON data is still an event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TERMINAL_TYPES = frozenset({"finished", "failed", "cancelled", "pruned"})


@dataclass(frozen=True)
class Event:
    """One job event: `type` is queued, started, batch, epoch, checkpoint, log, finished, failed or
    cancelled (or a type this SDK does not know yet); `data` is its type-specific payload."""

    type: str
    id: str | None = None
    job_id: str | None = None
    attempt: int | None = None
    ts: str | None = None
    v: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    @property
    def epoch(self) -> int | None:
        value = self.data.get("epoch")
        return value if isinstance(value, int) else None

    @property
    def logs(self) -> dict[str, float]:
        logs = self.data.get("logs")
        return dict(logs) if isinstance(logs, dict) else {}


def event_from_message(event_type: str | None, event_id: str | None, data: str) -> Event:
    payload: Any = None
    if data:
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
    if not isinstance(payload, dict):
        return Event(type=event_type or "message", id=event_id, data={"text": data} if data else {})
    inner = payload.get("data")
    attempt = payload.get("attempt")
    version = payload.get("v")
    return Event(
        type=str(payload.get("type") or event_type or "message"),
        id=event_id or (str(payload["id"]) if payload.get("id") is not None else None),
        job_id=payload.get("job_id"),
        attempt=attempt if isinstance(attempt, int) else None,
        ts=payload.get("ts"),
        v=version if isinstance(version, int) else None,
        data=inner if isinstance(inner, dict) else ({} if inner is None else {"value": inner}),
        raw=payload,
    )


def id_key(event_id: str | None) -> tuple[int, ...] | None:
    """Stream ids look like `1700000000000-3`; they order as tuples of integers."""
    if not event_id:
        return None
    try:
        return tuple(int(part) for part in event_id.split("-"))
    except ValueError:
        return None


class Deduplicator:
    """Drops events already delivered: a resumed stream must not repeat one."""

    def __init__(self) -> None:
        self._last: tuple[int, ...] | None = None
        self._seen: set[str] = set()

    def fresh(self, event: Event) -> bool:
        key = id_key(event.id)
        if key is not None:
            if self._last is not None and key <= self._last:
                return False
            self._last = key
            return True
        if event.id is not None:
            if event.id in self._seen:
                return False
            self._seen.add(event.id)
        return True


def carries_events(response: Any) -> bool:
    """A 204 says the client already has the ended job's last event: there is nothing to read."""
    return response.status_code != 204 and "text/event-stream" in response.headers.get("content-type", "")


class EventStream:
    """One job's events across the connections that carry them: the `Last-Event-ID` to resume from, what was
    already delivered (a resumed stream repeats nothing), the server's reconnect hint and the attempt that last
    made progress (reconnects count failures since then)."""

    def __init__(self, job_id: str, last_event_id: str | None = None) -> None:
        self.job_id = job_id
        self.path = f"/v1/jobs/{job_id}/events"
        self.last_id = last_event_id
        self.retry_ms: int | None = None
        self.progress_at = 0
        self._dedupe = Deduplicator()
        if id_key(last_event_id) is not None:
            self._dedupe.fresh(Event(type="resume", id=last_event_id))

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_id} if self.last_id else {}

    def accept(self, sse: Any, attempt: int) -> Event | None:
        """The event an `httpx_sse.ServerSentEvent` carries, or None for a hint, a heartbeat or a repeat."""
        if sse.retry is not None:
            self.retry_ms = sse.retry
        # httpx-sse reports a block with only `retry:` or a comment (a heartbeat) as an empty "message".
        if not sse.data and sse.event == "message":
            return None
        event = event_from_message(sse.event, sse.id or None, sse.data)
        if not self._dedupe.fresh(event):
            return None
        self.last_id = event.id or self.last_id
        self.progress_at = attempt
        return event
