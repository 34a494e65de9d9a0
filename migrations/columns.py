"""The column kinds many migrations declare: a 32-character id, a sha256 digest, a time with its zone.

Migrations are history: each one's DDL must stay what it was when it ran, so these never change once a migration
uses them (a new kind of column gets a new function here, or its own lines in its migration).
"""

from __future__ import annotations

import sqlalchemy as sa


def id_column(name: str, *, nullable: bool = False) -> sa.Column:
    """An id of up to 32 characters (new rows: uuid4 hex): a row's own, or the one it refers to."""
    return sa.Column(name, sa.String(length=32), nullable=nullable)


def sha256_column(name: str, *, nullable: bool = False) -> sa.Column:
    """A sha256 in hex: a blob's, or a key's."""
    return sa.Column(name, sa.String(length=64), nullable=nullable)


def time_column(name: str, *, nullable: bool = False) -> sa.Column:
    """A moment, stored with its time zone."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)
