"""Rows as a tenant sees them: another tenant's row is exactly as absent as a missing one (the repositories'
look-up of a row by id for its owner), and a new row of a tenant's stored."""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy.orm import Session

ID = re.compile(r"^[0-9a-f]{32}$")
T = TypeVar("T")


def owned(session: Session, table: type[T], ident: str, tenant_id: str) -> T | None:
    """The row with this id if `tenant_id` owns it, else None. An id that cannot exist is not looked up (a
    NUL or a megabyte of text never reaches the database)."""
    if not isinstance(ident, str) or not ID.match(ident):
        return None
    row = session.get(table, ident)
    if row is None or row.tenant_id != tenant_id:
        return None
    return row


def added(session: Session, row: T) -> T:
    """`row` added to the session's transaction and flushed, so its defaults (id, times) are filled in."""
    session.add(row)
    session.flush()
    return row
