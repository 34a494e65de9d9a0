"""Engine and session factory shared by the API and the workers (DESIGN.md §6)."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.core.settings import get_settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # The embedded default has the API and a worker writing to one file: WAL lets readers go on
        # while one writer writes, and the busy timeout makes a second writer wait instead of failing.
        busy_timeout_s = get_settings().sqlite_busy_timeout_s
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=20)


POOL_SIZE = 10
T = TypeVar("T")
# Async routes run their SQL in worker threads, at most this many at once: fewer than the pool keeps, so a burst
# waits for a thread instead of opening overflow connections that are closed again at once (the profile showed
# connection set-up under load), and two cores are not worth more queries in flight than this.
SQL_THREADS = 8
# One limiter per event loop (a limiter belongs to the loop it was first used on).
_sql_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary())


async def run_sql(function: Callable[..., T], *args: object) -> T:
    """Run `function(*args)` (which opens and closes its own session) in a worker thread."""
    loop = asyncio.get_running_loop()
    limiter = _sql_limiters.get(loop)
    if limiter is None:
        limiter = _sql_limiters[loop] = anyio.CapacityLimiter(SQL_THREADS)
    return await anyio.to_thread.run_sync(function, *args, limiter=limiter)


@functools.lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().resolved_database_url)


@functools.lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


def get_read_sessionmaker() -> sessionmaker[Session]:
    """Sessions for reads that change nothing: autocommit, so no BEGIN and ROLLBACK round trips around them.
    Each statement still sees one committed snapshot (PostgreSQL's read committed gives no more inside a
    transaction)."""
    return _read_sessionmaker(get_engine())


@functools.lru_cache
def _read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session for code that owns its transaction (tasks, CLI); it commits on success."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session() -> Iterator[Session]:
    """FastAPI dependency: the route owns the commit."""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()
