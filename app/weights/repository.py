"""The weights_files table: a tenant's uploaded `.weights.h5` files by id, and new ones stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.scope import added, owned
from app.core.tables import WeightsFile


def get_weights(session: Session, *, tenant_id: str, weights_id: str) -> WeightsFile | None:
    return owned(session, WeightsFile, weights_id, tenant_id)


def insert_weights(session: Session, **values: Any) -> WeightsFile:
    return added(session, WeightsFile(**values))
