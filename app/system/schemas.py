"""The system routes' answers: liveness, readiness and versions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(description="`ready` or `not ready`")
    checks: dict[str, str] = Field(description="each dependency (`sql`, `redis`, `workers`) and its state")


class Versions(BaseModel):
    kerasd: str
    tensorflow: str | None = Field(description="null where the spec checker runs Keras on another backend")
    keras: str
    backend: str = Field(description="the Keras backend the API's spec checker builds models on")
    default_backend: str = Field(description="the backend of a job that names none (KERASD_DEFAULT_BACKEND)")
    backends: list[str] = Field(description="the Keras backends workers on this server's queue have been seen "
                                "running (a job may name one as its `backend`); the live ones are in `workers`")
    workers: list[dict[str, Any]] = Field(description="each live worker: its queue, versions and devices; its name "
                                          "and pid only to an admin key (or, in localhost-open mode, to this machine)")
