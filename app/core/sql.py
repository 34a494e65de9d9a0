"""Questions to the database: one SQL statement written once, its parameters and how its rows are shaped,
run by a synchronous executor (a Session or Connection) or on the event loop (an async psycopg connection).

A repository builds a `Question`; the caller decides where it runs: `ask(session, question)` in workers, the CLI
and sync routes, `await ask_async(connection, question)` on the loop (app/core/read_pool.py). The statement is a
SQLAlchemy clause (Core or `text()`, one per dialect where the SQL differs); on the loop it is the text SQLAlchemy
compiles for psycopg, compiled once, so both executors send the same SQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

if TYPE_CHECKING:
    from psycopg import AsyncConnection

T = TypeVar("T")
_PSYCOPG = PGDialect_psycopg()


class Statement:
    """One statement: the same clause for every dialect, or a clause per dialect (`postgresql=`, `sqlite=`)."""

    def __init__(self, clause: ClauseElement | None = None, **by_dialect: ClauseElement) -> None:
        self._default = clause
        self._by_dialect = by_dialect

    def clause(self, dialect: str) -> ClauseElement:
        found = self._by_dialect.get(dialect, self._default)
        if found is None:
            raise LookupError(f"this statement has no SQL for {dialect}")
        return found

    @functools.cached_property
    def psycopg(self) -> tuple[str, Any]:
        """(the SQL text with psycopg's `%(name)s` parameters, the compiled statement that fills in defaults)."""
        compiled = self.clause("postgresql").compile(dialect=_PSYCOPG)
        if compiled.literal_execute_params or compiled.post_compile_params:
            # An expanding IN (...) is rendered at execution by SQLAlchemy: not a statement psycopg can run as is.
            raise ValueError("a statement run on the loop cannot have expanding parameters; use = ANY(:list)")
        return compiled.string, compiled


@dataclass(frozen=True, slots=True)
class Question(Generic[T]):
    """A statement, its parameters, and `shape`, which turns the rows (attribute access by column name) into
    the answer."""

    statement: Statement
    params: Mapping[str, Any] = field(default_factory=dict)
    shape: Callable[[Sequence[Any]], T] = list  # type: ignore[assignment]


def dialect_of(executor: Session | Connection) -> str:
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    return bind.dialect.name


def ask(executor: Session | Connection, question: Question[T]) -> T:
    """Run a question on a Session (in its transaction) or a Connection."""
    result = executor.execute(question.statement.clause(dialect_of(executor)), dict(question.params))
    # An ORM-enabled statement's result always has rows to give; a Core UPDATE without RETURNING has none.
    return question.shape(result.all() if getattr(result, "returns_rows", True) else [])


async def ask_async(connection: AsyncConnection, question: Question[T]) -> T:
    """The same question on an async psycopg connection whose rows have attribute access (namedtuple_row)."""
    from psycopg.pq import ExecStatus  # here: workers import this module without the loop's driver

    sql, compiled = question.statement.psycopg
    cursor = await connection.execute(sql, compiled.construct_params(dict(question.params)))
    # Whether rows came back, from the result's status: `cursor.description` builds a Column object for each column
    # on every call: 30 us for the job answer's 23 columns, where the status costs 0.2 us (a loaded 2-core machine).
    result = cursor.pgresult
    rows = await cursor.fetchall() if result is not None and result.status == ExecStatus.TUPLES_OK else []
    return question.shape(rows)


def one(rows: Sequence[Any]) -> Any:
    """`shape` of a question answered by at most one row: the row, or None."""
    return rows[0] if rows else None


def scalar(rows: Sequence[Any]) -> Any:
    """`shape` of a question answered by one value (None without a row)."""
    return rows[0][0] if rows else None
