"""Reads that change nothing, answered where they cost least: on PostgreSQL on the event loop's connections
(app/core/read_pool.py), on SQLite in a worker thread on a session without a transaction."""

from __future__ import annotations

from app.core.database import get_read_sessionmaker, run_sql
from app.core.read_pool import read_pool
from app.core.sql import Question, ask


def _answer_in_thread(*questions: Question) -> list:
    with get_read_sessionmaker()() as session:
        return [ask(session, question) for question in questions]


async def answer(*questions: Question) -> list:
    """The answers of the questions, in order."""
    pool = read_pool()
    if pool is None:
        return await run_sql(_answer_in_thread, *questions)
    return [await pool.ask(question) for question in questions]
