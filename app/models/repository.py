"""The models table: a tenant's model specs by id, newest first (offset pages: a tenant holds few), stored and
deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.scope import added, owned
from app.core.tables import ModelSpec


def get_model(session: Session, *, tenant_id: str, model_id: str) -> ModelSpec | None:
    return owned(session, ModelSpec, model_id, tenant_id)


def insert_model(session: Session, **values: Any) -> ModelSpec:
    return added(session, ModelSpec(**values))


def model_page(session: Session, *, tenant_id: str, limit: int, offset: int) -> tuple[list[ModelSpec], int]:
    mine = ModelSpec.tenant_id == tenant_id
    rows = session.scalars(select(ModelSpec).where(mine).order_by(ModelSpec.created_at.desc())
                           .limit(limit).offset(offset))
    return list(rows), session.scalar(select(func.count()).select_from(ModelSpec).where(mine))


def delete_model(session: Session, *, row: ModelSpec) -> None:
    session.delete(row)
