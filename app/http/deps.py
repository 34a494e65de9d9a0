"""FastAPI dependencies shared by the routes."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Query, Request
from pydantic import BaseModel
from redis.exceptions import RedisError

from app.core.errors import Problem
from app.core.settings import Settings, get_settings
from app.core.workers_registry import backends_seen, live_workers
from app.specchecker.pool import SpecChecker


# Async, though they do no I/O: FastAPI runs a sync dependency in its thread pool, a hop per request each.
async def spec_checker(request: Request) -> SpecChecker:
    return request.app.state.spec_checker


async def settings() -> Settings:
    return get_settings()


def live_workers_of(request: Request) -> list[dict[str, Any]]:
    """The workers alive now; a 503 while Redis cannot say."""
    try:
        return live_workers(request.app.state.redis_sync)
    except RedisError:
        raise Problem(503, "Workers Unknown", "Which workers are alive cannot be read now (Redis is unavailable), "
                      "so a job asking for this many GPUs cannot be checked; try again shortly.",
                      headers={"Retry-After": "5"}) from None


def backends_seen_of(request: Request, queue: str) -> dict[str, bool]:
    """The Keras backends the workers seen on the base queue run (with TensorFlow or not); a 503 while Redis cannot
    say."""
    try:
        return backends_seen(request.app.state.redis_sync, queue)
    except RedisError:
        raise Problem(503, "Workers Unknown", "Which Keras backends the workers run cannot be read now (Redis is "
                      "unavailable), so the job's backend cannot be checked; try again shortly.",
                      headers={"Retry-After": "5"}) from None


def feasibility_checks(request: Request, config: Settings) -> dict[str, Any]:
    """create_job's arguments (app/jobs/service.py) that refuse a job the workers seen could never run: more GPUs
    than any has, a backend none runs. Redis is read only when a check needs it."""
    return {"max_waiting_gpus": config.max_waiting_job_gpus, "live_workers": lambda: live_workers_of(request),
            "backends_seen": lambda: backends_seen_of(request, config.queue), "default_backend": config.job_backend}


class Paging:
    def __init__(self, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> None:
        self.limit = limit
        self.offset = offset


async def paging(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> Paging:
    """`Depends(paging)`: the same query parameters as `Depends(Paging)`, without the thread hop of a class."""
    return Paging(limit=limit, offset=offset)


CURSOR_ID = re.compile(r"^[0-9a-f]{32}$")


class Page(BaseModel):
    items: list[Any]
    total: int
    limit: int
    offset: int


def encode_cursor(created_at: datetime, ident: str) -> str:
    """An opaque cursor for keyset paging: the last row's (created_at, id). SQLite gives back naive timestamps;
    every stored one is UTC."""
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{ident}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor stands for; a 422 for anything that is not a cursor this API gave."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, ident = text.split("|")
        created_at = datetime.fromisoformat(stamp)
        if not CURSOR_ID.match(ident) or created_at.tzinfo is None:
            raise ValueError(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(422, "Invalid Cursor", f"cursor {cursor[:60]!r} is not a cursor this API gave; pass the "
                      "`next_cursor` of the page before (or follow its `next` link), or leave it out for the first "
                      "page.", field="cursor") from None
    return created_at, ident


def encode_sorted_cursor(sort: str, rank: int, value: float | str | None, created_at: datetime | None,
                         ident: str) -> str:
    """A cursor of a sorted list (app/jobs/listing.py's Position), with the sort it belongs to (a naive timestamp
    from SQLite taken as UTC, as in `encode_cursor`)."""
    if created_at is not None and created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    stamp = created_at.isoformat() if created_at is not None else None
    text = json.dumps([sort, rank, value, stamp, ident], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_sorted_cursor(cursor: str, sort: str, ranks: int) -> tuple[int, float | str | None, datetime | None, str]:
    """(rank, value, created_at, id) of a sorted list's cursor; a 422 for a cursor of another sort, or anything
    that is not a cursor this API gave."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        given, rank, value, stamp, ident = json.loads(text)
        created_at = datetime.fromisoformat(stamp) if stamp is not None else None
        if (not isinstance(rank, int) or not 0 <= rank < ranks or not isinstance(value, float | int | str | None)
                or not isinstance(ident, str) or not CURSOR_ID.match(ident)
                or (created_at is not None and created_at.tzinfo is None)):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Problem(422, "Invalid Cursor", f"cursor {cursor[:60]!r} is not a cursor this API gave; pass the "
                      "`next_cursor` of the page before (or follow its `next` link), or leave it out for the first "
                      "page.", field="cursor") from None
    if given != sort:
        raise Problem(422, "Invalid Cursor", f"this cursor continues a list sorted by {given!r}, not {sort!r}: keep "
                      "the sort of the page before (its `next` link has it).", field="cursor")
    return rank, value, created_at, ident
