"""Quotas per tenant: the server's settings, overridden by the tenant row's own values (NULL: the setting).

Stored bytes count every row the tenant holds (datasets, uploaded weights and model files, its jobs' artifacts
and checkpoints) at its full size, even when the same bytes are stored once for several tenants: what one
tenant may store must not depend on, nor reveal, what others uploaded.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.core.errors import Problem
from app.core.repositories import jobs, tenants
from app.core.settings import Settings, get_settings
from app.core.sql import ask
from app.core.tables import Tenant

if TYPE_CHECKING:
    from app.core.read_pool import ReadPool

# Tenant limits change rarely (an administrator's command): a request reads them from this cache.
CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class Limits:
    running_jobs: int
    queued_jobs: int
    stored_bytes: int
    requests_per_s: float
    request_burst: int


def limits_of(tenant: Any, settings: Settings) -> Limits:
    """A Tenant's limits (or a row with its quota columns; None: the server's defaults)."""
    def pick(own, default):
        return default if own is None else own

    tenant = tenant or Tenant()
    return Limits(running_jobs=pick(tenant.max_running_jobs, settings.max_running_jobs_per_tenant),
                  queued_jobs=pick(tenant.max_queued_jobs, settings.max_queued_jobs_per_tenant),
                  stored_bytes=pick(tenant.max_stored_bytes, settings.max_stored_bytes_per_tenant),
                  requests_per_s=pick(tenant.requests_per_s, settings.requests_per_s_per_tenant),
                  request_burst=pick(tenant.request_burst, settings.request_burst_per_tenant))


_cache: dict[str, tuple[float, Limits]] = {}
_cache_lock = threading.Lock()


def cached_limits(tenant_id: str) -> Limits | None:
    """The tenant's limits if cached and fresh, without a session (the async request path)."""
    with _cache_lock:
        cached = _cache.get(tenant_id)
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def tenant_limits(session: Session, tenant_id: str, *, fresh: bool = False) -> Limits:
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(tenant_id)
    if cached is not None and cached[0] > now and not fresh:
        return cached[1]
    return _remember(tenant_id, limits_of(ask(session, tenants.limits_row(tenant_id=tenant_id)), get_settings()), now)


async def read_tenant_limits(reads: ReadPool, tenant_id: str) -> Limits:
    """The same question on the event loop's connections (app/core/read_pool.py): what the key check asks when a
    tenant's limits are not cached, without a thread hop and a session."""
    now = time.monotonic()
    row = await reads.ask(tenants.limits_row(tenant_id=tenant_id))
    return _remember(tenant_id, limits_of(row, get_settings()), now)


def _remember(tenant_id: str, limits: Limits, now: float) -> Limits:
    with _cache_lock:
        # Each entry lives a random 75-100% of the TTL: entries cached together (every tenant's first requests
        # after a start) would otherwise expire together, and their SQL lookups, all at once, stalled every
        # request of the process every CACHE_TTL_S (the slowest 1% of bench/api_load.py's reads came in
        # clusters 5 s apart).
        _cache[tenant_id] = (now + CACHE_TTL_S * (1 - random.random() / 4), limits)
    return limits


def stored_bytes(session: Session, tenant_id: str) -> int:
    return ask(session, tenants.stored_bytes(tenant_id=tenant_id))


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n:,} bytes"


def check_storage(session: Session, tenant_id: str, incoming: int) -> None:
    """413 when `incoming` more bytes would take the tenant past its stored-bytes quota."""
    quota = tenant_limits(session, tenant_id).stored_bytes
    if quota <= 0:
        return
    used = stored_bytes(session, tenant_id)
    if used + incoming > quota:
        raise Problem(413, "Storage Quota Exceeded", f"This upload ({_gib(incoming)}) would take your tenant past "
                      f"its stored-bytes quota of {_gib(quota)} ({quota:,} bytes); {_gib(used)} are in use. Delete "
                      "datasets, models or finished jobs, or ask an administrator for a larger quota.",
                      quota_bytes=quota, used_bytes=used)


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialize a tenant's quota-checked writes (PostgreSQL row lock until the commit; SQLite has one writer)."""
    tenants.lock_tenant(session, tenant_id=tenant_id)


def check_queued(session: Session, tenant_id: str) -> None:
    """409 when the tenant already has its quota of queued jobs; call after lock_tenant."""
    quota = tenant_limits(session, tenant_id).queued_jobs
    if quota <= 0:
        return
    queued = ask(session, jobs.queued_of_tenant(tenant_id=tenant_id))
    if queued >= quota:
        raise Problem(409, "Queue Quota Exceeded", f"Your tenant has {queued} queued jobs, its quota of queued "
                      f"jobs is {quota}. Wait for some to start, or cancel some (POST /v1/jobs/{{id}}/cancel), "
                      "then submit again.", quota_queued_jobs=quota)
