"""A job as the API answers it: status, attempts, queue position, history, result and links."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class JobError(BaseModel):
    type: str
    message: str


class ArtifactOut(BaseModel):
    name: str
    size_bytes: int
    media_type: str
    sha256: str
    url: str


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    model_id: str
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    # 1 = the next job a worker takes; null once it left the queue.
    queue_position: int | None
    cancel_requested_at: datetime | None
    request: dict[str, Any]
    # Keras's History.history: metric name -> one value per finished epoch.
    history: dict[str, list[float | None]]
    epochs: list[dict[str, Any]]
    result: dict[str, Any] | None
    links: dict[str, str]


class JobPage(BaseModel):
    """A page of jobs, newest first. Follow `next` (or pass `next_cursor` as `cursor`) for the one after it: each
    page costs the same however deep it is, and jobs added meanwhile never shift it."""

    items: list[JobOut]
    limit: int
    next: str | None = Field(description="the next page's path with its cursor; null on the last page")
    next_cursor: str | None = Field(description="the cursor of the next page (`?cursor=`); null on the last page")
    total: int | None = Field(description="the number of jobs these filters match: given when asked for "
                              "(`?total=exact|estimate`) or when this first page holds them all, else null")
    total_kind: Literal["exact", "estimate"] | None = Field(
        description="whether `total` was counted or is PostgreSQL's estimate (`?total=estimate`: cheap at any "
                    "size, not exact); null without a total")
