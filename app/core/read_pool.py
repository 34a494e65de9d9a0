"""A few autocommit psycopg connections on the event loop, for the reads users poll hardest (PostgreSQL only): the
repositories' questions (app/core/sql.py) run here with `await pool.ask(question)`.

Why not the synchronous session of DESIGN.md §6 here: in the profile of bench/api_load.py each read paid a
thread hop (the event loop handing the work to a worker thread and taking the answer back, with the GIL
passed to and fro), a session, the pool's pre-ping round trip and SQLAlchemy's execution machinery around
one statement. On the loop, a read is one round trip on a connection of its own and nothing else. `GET /v1/jobs/{id}`,
`GET /v1/jobs` and the key check's tenant limits use this; they change nothing, so a read that finds its idle
connection broken (PostgreSQL restarted) is simply sent again once on a new one, which is what pre-ping did.

Why hand-made rather than a library (DESIGN.md: a library unless a benchmark shows it costs over 5%):
bench/read_path.py, the job answer read 16 at a time in one process, CPU a read: this pool 222 us (193-242),
psycopg_pool's AsyncConnectionPool 285 (237-295: 1.28x; 1.15x in a second run, 251 against 290), SQLAlchemy's
async engine 546 (2.46x), a session in a thread 643; 5 rounds, load 6-12. psycopg_pool adds 40-60 us to a read
that costs the API about 760 us of CPU in all: 5-8%. And while PostgreSQL is down it keeps a request waiting
for its reconnection attempts until its timeout, where this pool's fresh connection fails at once and the
API answers 503.

Errors keep the API's shapes: PostgreSQL unreachable is psycopg's OperationalError (a 503, app/http/problems.py), and
a request that waits longer than POOL_TIMEOUT_S for a connection is the same 503 as the synchronous pool's
timeout.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.core.settings import get_settings
from app.core.sql import Question, ask_async

T = TypeVar("T")
# Connections a process keeps for these reads: a read is one short statement, so a few in flight keep two cores
# busy; more would only queue inside PostgreSQL.
POOL_SIZE = 6
# As SQLAlchemy's pool_timeout.
POOL_TIMEOUT_S = 30.0


@functools.lru_cache
def conninfo(database_url: str) -> str:
    """psycopg's URL for the SQLAlchemy URL in KERASD_DATABASE_URL (`postgresql+psycopg://...`)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class ReadPool:
    """Autocommit connections, opened when first needed and kept; at most `size` in use at once."""

    def __init__(self, conninfo: str, size: int = POOL_SIZE) -> None:
        self.conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection] = []
        self._slots = asyncio.Semaphore(size)

    async def ask(self, question: Question[T]) -> T:
        """A repository's question, answered on one of this loop's connections."""
        return await self.run(lambda connection: ask_async(connection, question))

    async def run(self, read: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """`read(connection)`, once more on a new connection if a kept one turned out broken."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(POOL_TIMEOUT_S):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeoutError(f"no connection for a read came free in {POOL_TIMEOUT_S:g} s") from None
        else:
            await self._slots.acquire()
        try:
            kept = bool(self._idle)
            connection = self._idle.pop() if kept else await self._connect()
            try:
                try:
                    return await read(connection)
                except psycopg.OperationalError:
                    if not kept:
                        raise
                    await connection.close()
                    connection = await self._connect()
                    return await read(connection)
            finally:
                # Kept only if it is idle: a read cancelled mid-statement (the client went away) leaves it busy.
                if connection.broken or connection.info.transaction_status != TransactionStatus.IDLE:
                    await connection.close()
                elif not connection.closed:
                    self._idle.append(connection)
        finally:
            self._slots.release()

    async def _connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, row_factory=namedtuple_row)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


# One pool per event loop (a connection belongs to the loop it was opened on).
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadPool] = weakref.WeakKeyDictionary()


def read_pool() -> ReadPool | None:
    """This loop's pool, or None where the database is not PostgreSQL (SQLite: the synchronous path)."""
    url = get_settings().resolved_database_url
    if not url.startswith("postgresql"):
        return None
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None or pool.conninfo != conninfo(url):
        pool = _pools[loop] = ReadPool(conninfo(url))
    return pool


async def close_read_pool() -> None:
    """At the app's shutdown: close this loop's idle connections."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()
