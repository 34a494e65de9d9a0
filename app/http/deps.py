"""FastAPI dependencies shared by the routes."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from pydantic import BaseModel

from app.core.settings import Settings, get_settings
from app.specchecker.pool import SpecChecker


# Async, though they do no I/O: FastAPI runs a sync dependency in its thread pool, a hop per request each.
async def spec_checker(request: Request) -> SpecChecker:
    return request.app.state.spec_checker


async def settings() -> Settings:
    return get_settings()


class Paging:
    def __init__(self, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> None:
        self.limit = limit
        self.offset = offset


async def paging(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> Paging:
    """`Depends(paging)`: the same query parameters as `Depends(Paging)`, without the thread hop of a class."""
    return Paging(limit=limit, offset=offset)


class Page(BaseModel):
    items: list[Any]
    total: int
    limit: int
    offset: int
