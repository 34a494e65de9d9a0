"""Tenants and their API keys: made, listed, given quotas, revoked. Shared by `kerasd admin` and /v1/admin."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core.errors import Problem
from app.core.quotas import stored_bytes
from app.core.settings import get_settings
from app.core.sql import ask
from app.core.tables import ApiKey, Tenant
from app.tenants import repository
from app.tenants.key_cache import bump_generation
from app.tenants.keys import ROLES, new_key

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
QUOTA_FIELDS = ("max_running_jobs", "max_queued_jobs", "max_stored_bytes", "requests_per_s", "request_burst")


def _not_found(kind: str, ident: str) -> Problem:
    return Problem(404, "Not Found", f"No {kind} {ident!r}. List them with `kerasd admin list-tenants` or "
                   "GET /v1/admin/tenants.")


def create_tenant(session: Session, *, name: str, quotas: dict[str, Any] | None = None) -> Tenant:
    if not NAME.match(name):
        raise Problem(422, "Invalid Name", f"Tenant name {name!r} must be 1-100 letters, digits, '_', '.' or '-', "
                      "starting with a letter or digit.", field="name")
    if ask(session, repository.name_taken(name=name)):
        raise Problem(409, "Tenant Exists", f"A tenant named {name!r} exists already; pick another name.")
    check_quotas(quotas or {})
    return repository.insert_tenant(session, name=name, **(quotas or {}))


def set_quotas(session: Session, *, tenant: Tenant, quotas: dict[str, Any]) -> None:
    """Each given quota replaces the tenant's own value; None goes back to the server's setting."""
    check_quotas(quotas)
    repository.set_quotas(session, tenant=tenant, quotas=quotas)


def check_quotas(quotas: dict[str, Any]) -> None:
    for field, value in quotas.items():
        if field not in QUOTA_FIELDS:
            raise Problem(422, "Unknown Quota", f"{field!r} is not a quota; the quotas are {list(QUOTA_FIELDS)}.")
        if value is not None and value < 0:
            raise Problem(422, "Invalid Quota", f"{field} must be 0 (no limit) or more, not {value}.", field=field)


def get_tenant(session: Session, *, ident: str) -> Tenant:
    """By id or by name."""
    tenant = repository.tenant_by_id_or_name(session, ident=ident)
    if tenant is None:
        raise _not_found("tenant", ident)
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return repository.all_tenants(session)


def usage(session: Session, tenant_id: str) -> dict[str, int]:
    running, queued = repository.usage(session, tenant_id=tenant_id)
    return {"running_jobs": running, "queued_jobs": queued, "stored_bytes": stored_bytes(session, tenant_id)}


def create_key(session: Session, *, tenant: Tenant, name: str, role: str) -> tuple[ApiKey, str]:
    """The new key row and the key itself, which is shown this once and never stored."""
    if role not in ROLES:
        raise Problem(422, "Invalid Role", f"role must be one of {list(ROLES)}, not {role!r}.", field="role")
    key, prefix, digest = new_key()
    row = repository.insert_key(session, tenant_id=tenant.id, name=name[:100], prefix=prefix, key_sha256=digest,
                                role=role)
    return row, key


def list_keys(session: Session, *, tenant_id: str) -> list[ApiKey]:
    return repository.keys_of(session, tenant_id=tenant_id)


def revoke_key(session: Session, *, ident: str) -> ApiKey:
    """By id or by visible prefix (`kd_1a2b3c4d`); revoking twice is no error."""
    row = repository.key_by_id_or_prefix(session, ident=ident)
    if row is None:
        raise Problem(404, "Not Found", f"No API key {ident!r} (give its id or its prefix, kd_xxxxxxxx).")
    repository.revoke(session, key=row)
    # Once committed, every API process must stop accepting the key from its cache (app/tenants/key_cache.py).
    event.listen(session, "after_commit", _announce_revocation, once=True)
    return row


def _announce_revocation(_session: Session) -> None:
    bump_generation(get_settings().redis_url)
