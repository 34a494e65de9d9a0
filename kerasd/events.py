"""Job events as the API streams them (Server-Sent Events), parsed tolerantly.

Each SSE message carries `id` (the sequence id, sent back as `Last-Event-ID` to resume), `event` (the
type) and JSON `data`: `{v, id, type, job_id, attempt, ts, data}`. Fields the SDK does not know are kept
in `raw`; a message without JSON data is still an event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

TERMINAL_TYPES = frozenset({"finished", "failed", "cancelled"})


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


class SSEParser:
    """The SSE wire format (WHATWG): fields per line, a blank line ends a message, `:` starts a comment."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self.last_id: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data and self._event is None:
                self._reset()
                return None
            if self._id is not None:
                self.last_id = self._id
            event = event_from_message(self._event, self._id or self.last_id, "\n".join(self._data))
            self._reset()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def feed_lines(self, lines: Iterable[str]) -> Iterator[Event]:
        for line in lines:
            event = self.feed(line)
            if event is not None:
                yield event


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
