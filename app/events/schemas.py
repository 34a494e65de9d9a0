"""One job event as the stream sends it in each SSE message's `data:` line (the contract of app/core/events.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.events import EVENT_TYPES

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class JobEvent(BaseModel):
    """A job event (schema version 1): `type` says what happened, `data` holds that type's fields."""

    model_config = ConfigDict(title="JobEvent", extra="allow")

    id: str | None = Field(description="The sequence id (`1700000000000-0`), also the SSE `id:`; send the last one "
                                       "back as `Last-Event-ID` to resume. null for an event replayed from SQL.")
    v: int = Field(description="Schema version, now 1; a change that breaks readers bumps it.")
    type: EventType = Field(description="Also the SSE `event:` name; finished, failed and cancelled are terminal.")
    job_id: str
    attempt: int = Field(description="The worker attempt that published it (0 for `queued`).")
    ts: str = Field(description="When it happened, ISO 8601 UTC.")
    data: dict[str, Any] = Field(description="The type's own fields (see the table in the route's description).")
    replayed: bool | None = Field(default=None, description="true on events rebuilt from SQL after the stream "
                                                            "expired; absent otherwise.")
