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
    backend: str
    workers: list[dict[str, Any]] = Field(description="each live worker: its queue, versions and devices; its name "
                                          "and pid only to an admin key (or, in localhost-open mode, to this machine)")
