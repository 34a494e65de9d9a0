"""FastAPI dependencies shared by the routes."""

from __future__ import annotations

from fastapi import Query, Request

from app.settings import Settings, get_settings
from app.spec_checker import SpecChecker


def spec_checker(request: Request) -> SpecChecker:
    return request.app.state.spec_checker


def settings() -> Settings:
    return get_settings()


class Paging:
    def __init__(self, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> None:
        self.limit = limit
        self.offset = offset
