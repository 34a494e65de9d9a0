"""A job as the API answers it: status, attempts, queue position, history, result and links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


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
    """Jobs, newest first."""

    items: list[JobOut]
    total: int
    limit: int
    offset: int
