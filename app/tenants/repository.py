"""The tenants and api_keys tables as the API and `kerasd admin` ask them: tenants made, found, listed and given
quotas, their usage, keys made, listed, found and revoked. What the core asks of tenants (limits, the row lock,
the scheduler's bookkeeping) is in app/core/repositories/tenants.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from app.core.repositories import jobs
from app.core.scope import added
from app.core.sql import Question, Statement, ask, one
from app.core.tables import ApiKey, Tenant, utcnow

KEYS = ApiKey.__table__
# The key check of every request that its cache does not answer: one row by the key's visible prefix.
_KEY_BY_PREFIX = Statement(select(KEYS.c.id, KEYS.c.tenant_id, KEYS.c.key_sha256, KEYS.c.role, KEYS.c.revoked_at)
                           .where(KEYS.c.prefix == bindparam("prefix")))
_NAME_TAKEN = Statement(select(Tenant.__table__.c.id).where(Tenant.__table__.c.name == bindparam("name")))


def key_by_prefix(*, prefix: str) -> Question[Any]:
    """The key row with this visible prefix (id, tenant_id, key_sha256, role, revoked_at), or None."""
    return Question(_KEY_BY_PREFIX, {"prefix": prefix}, one)


def name_taken(*, name: str) -> Question[bool]:
    return Question(_NAME_TAKEN, {"name": name}, lambda rows: bool(rows))


def insert_tenant(session: Session, **values: Any) -> Tenant:
    return added(session, Tenant(**values))


def tenant_by_id_or_name(session: Session, *, ident: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(or_(Tenant.id == ident, Tenant.name == ident)))


def all_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.created_at)))


def set_quotas(session: Session, *, tenant: Tenant, quotas: dict[str, Any]) -> None:
    """Each given quota replaces the tenant's own value (None: back to the server's setting)."""
    for field, value in quotas.items():
        setattr(tenant, field, value)
    session.flush()


def usage(session: Session, *, tenant_id: str) -> tuple[int, int]:
    """(running jobs, queued jobs) of the tenant, neither counted over the tenant's whole history of jobs."""
    return (ask(session, jobs.running_jobs_of(tenant_id=tenant_id)),
            ask(session, jobs.queued_of_tenant(tenant_id=tenant_id)))


def insert_key(session: Session, **values: Any) -> ApiKey:
    return added(session, ApiKey(**values))


def keys_of(session: Session, *, tenant_id: str) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)))


def key_by_id_or_prefix(session: Session, *, ident: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(or_(ApiKey.id == ident, ApiKey.prefix == ident)))


def revoke(session: Session, *, key: ApiKey) -> None:
    """Revoked now, or when it was first revoked."""
    key.revoked_at = key.revoked_at or utcnow()
    session.flush()
