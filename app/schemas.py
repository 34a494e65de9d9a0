"""Request and response bodies of the public API, under Keras's own argument names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.specs import SequentialSpec


class ModelCreate(SequentialSpec):
    """The Sequential form of POST /v1/models. Every form it takes (functional, plugin_model, keras_json,
    yaml, and uploads) is `app.specs.ModelSpecForm`, read by `app.routes.models.model_request`."""


class ArrayOut(BaseModel):
    name: str
    shape: list[int]
    dtype: str


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    sha256: str
    size_bytes: int
    arrays: list[ArrayOut]
    created_at: datetime


class ModelOut(BaseModel):
    id: str
    name: str
    spec: dict[str, Any]
    summary: dict[str, Any]
    created_at: datetime


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


class WeightsOut(BaseModel):
    id: str
    name: str
    sha256: str
    size_bytes: int
    created_at: datetime


class Page(BaseModel):
    items: list[Any]
    total: int
    limit: int
    offset: int
