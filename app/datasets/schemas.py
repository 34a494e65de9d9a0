"""A dataset as the API answers it: its file, sha256 and arrays."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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


class DatasetPage(BaseModel):
    """Datasets, newest first."""

    items: list[DatasetOut]
    total: int
    limit: int
    offset: int
