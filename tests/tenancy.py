"""Tenants and keys for the tests, made in this process on the session's database (as `kerasd admin` does)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def make_tenant(prefix: str = "t", *, role: str = "user", **quotas: Any) -> tuple[str, str]:
    """(tenant id, API key) of a new tenant with these quota overrides."""
    from app.core.database import session_scope
    from app.tenants import service as tenants

    with session_scope() as session:
        tenant = tenants.create_tenant(session, name=f"{prefix}-{uuid.uuid4().hex[:8]}", quotas=quotas)
        _row, key = tenants.create_key(session, tenant=tenant, name="tests", role=role)
        return tenant.id, key


def keyed_client(url: str, key: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, **kwargs)
