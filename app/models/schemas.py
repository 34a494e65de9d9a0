"""The models' bodies: the Sequential form of a create request, and a model as the API answers it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.models.specs import SequentialSpec


class ModelCreate(SequentialSpec):
    """The Sequential form of POST /v1/models. Every form it takes (functional, plugin_model, keras_json,
    yaml, and uploads) is `app.models.specs.ModelSpecForm`, read by `app.models.routes.model_request`."""


class ModelOut(BaseModel):
    id: str
    name: str
    spec: dict[str, Any]
    summary: dict[str, Any]
    created_at: datetime


class Plugins(BaseModel):
    enabled: list[str] = Field(description="the plugin modules the server loads (KERASD_PLUGINS)")
    items: list[dict[str, Any]] = Field(description="each layer and model they register: its `class_name`, "
                                                    "`registered_name`, kind and arguments")


class ModelPage(BaseModel):
    """Models, newest first."""

    items: list[ModelOut]
    total: int
    limit: int
    offset: int
