"""The datasets table: a tenant's datasets by id, newest first (offset pages: a tenant holds few), stored and
deleted. Their bytes are blobs (app/core/repositories/blobs.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.scope import added, owned
from app.core.tables import Dataset


def get_dataset(session: Session, *, tenant_id: str, dataset_id: str) -> Dataset | None:
    return owned(session, Dataset, dataset_id, tenant_id)


def insert_dataset(session: Session, **values: Any) -> Dataset:
    return added(session, Dataset(**values))


def dataset_page(session: Session, *, tenant_id: str, limit: int, offset: int,
                 sha256: str | None) -> tuple[list[Dataset], int]:
    """A page of the tenant's datasets, newest first, and how many there are (only those of these bytes, if
    `sha256` is given: the SDK asks whether the server holds a file before it uploads it)."""
    mine = [Dataset.tenant_id == tenant_id] + ([Dataset.blob_sha256 == sha256] if sha256 is not None else [])
    rows = session.scalars(select(Dataset).where(*mine).order_by(Dataset.created_at.desc()).limit(limit)
                           .offset(offset))
    return list(rows), session.scalar(select(func.count()).select_from(Dataset).where(*mine))


def delete_dataset(session: Session, *, row: Dataset) -> None:
    session.delete(row)
