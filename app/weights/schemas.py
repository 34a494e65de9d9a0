"""Uploaded weights as the API answers them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class WeightsOut(BaseModel):
    id: str
    name: str
    sha256: str
    size_bytes: int
    created_at: datetime
