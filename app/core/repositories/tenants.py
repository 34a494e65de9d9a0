"""The tenants table as the core asks it: a tenant's limits, its row lock, the scheduler's bookkeeping, and the
bytes a tenant stores (quotas: app/core/quotas.py; the fair scheduler: workers/scheduling.py). Making,
listing and changing tenants and keys is the API's: app/tenants/repository.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from app.core.sql import Question, Statement, ask, one
from app.core.tables import Artifact, Blob, Dataset, Job, JobCheckpoint, ModelSpec, Tenant, WeightsFile

Executor = Session | Connection
TENANTS = Tenant.__table__
QUOTA_COLUMNS = ("max_running_jobs", "max_queued_jobs", "max_stored_bytes", "requests_per_s", "request_burst")

# The limits question: asked on the event loop (the key check, app/http/auth.py) and in sessions alike.
_LIMITS = Statement(text(f"SELECT {', '.join(QUOTA_COLUMNS)} FROM tenants WHERE id = :tenant_id"))
# The tenant's row, locked until the transaction ends: a tenant's quota-checked writes (submissions, uploads,
# claims) take their turns here. On SQLite, which has one writer at a time, the lock is left out.
# FOR NO KEY UPDATE, not FOR UPDATE: the foreign-key checks of rows that point at the tenant (FOR KEY SHARE) go on.
# Under FOR UPDATE a worker's claim, holding the tenant and waiting for a job's row, deadlocked with a PATCH of that
# job holding its row, whose second UPDATE of it re-checks the row's tenant key (PostgreSQL does so for a row
# version its own transaction wrote).
_LOCK = Statement(select(TENANTS).where(TENANTS.c.id == bindparam("tenant_id")).with_for_update(key_share=True))
_MARK_CLAIMED = Statement(update(TENANTS).where(TENANTS.c.id == bindparam("tenant_id"))
                          .values(last_claim_at=bindparam("now")))
_SCHEDULING = Statement(select(TENANTS.c.id, *(TENANTS.c[name] for name in QUOTA_COLUMNS), TENANTS.c.last_claim_at)
                        .where(TENANTS.c.id.in_(bindparam("tenant_ids", expanding=True))))


def limits_row(*, tenant_id: str) -> Question[Any]:
    """The tenant's quota columns (None where the server's setting applies), or None for no such tenant."""
    return Question(_LIMITS, {"tenant_id": tenant_id}, one)


def lock_tenant(executor: Executor, *, tenant_id: str) -> Any:
    """Lock the tenant's row until the caller's commit; the row (None for a tenant that has none)."""
    return ask(executor, Question(_LOCK, {"tenant_id": tenant_id}, one))


def mark_claimed(executor: Executor, *, tenant_id: str, now: datetime) -> None:
    """The scheduler served the tenant now: it goes to the back of the turn order."""
    ask(executor, Question(_MARK_CLAIMED, {"tenant_id": tenant_id, "now": now}))


def scheduling_rows(*, tenant_ids: list[str]) -> Question[dict[str, Any]]:
    """{tenant id: row with its quota columns and last_claim_at} for these tenants (those that exist)."""
    return Question(_SCHEDULING, {"tenant_ids": tenant_ids}, lambda rows: {row.id: row for row in rows})


def _sum(query: Any) -> Any:
    return func.coalesce(query.scalar_subquery(), 0)


def _stored_bytes_statement() -> Statement:
    tenant = bindparam("tenant_id")
    jobs = select(Job.__table__.c.id).where(Job.__table__.c.tenant_id == tenant)
    blobs, checkpoints, models = Blob.__table__, JobCheckpoint.__table__, ModelSpec.__table__
    datasets, weights, artifacts = Dataset.__table__, WeightsFile.__table__, Artifact.__table__
    parts = (
        select(func.sum(func.coalesce(datasets.c.charged_bytes, datasets.c.size_bytes)))
        .where(datasets.c.tenant_id == tenant),
        select(func.sum(weights.c.size_bytes)).where(weights.c.tenant_id == tenant),
        select(func.sum(blobs.c.size_bytes)).join(models, models.c.weights_sha256 == blobs.c.sha256)
        .where(models.c.tenant_id == tenant),
        select(func.sum(artifacts.c.size_bytes)).where(artifacts.c.job_id.in_(jobs)),
        select(func.sum(blobs.c.size_bytes)).join(checkpoints, checkpoints.c.blob_sha256 == blobs.c.sha256)
        .where(checkpoints.c.job_id.in_(jobs)),
    )
    total = _sum(parts[0])
    for part in parts[1:]:
        total = total + _sum(part)
    return Statement(select(total))


# Every row the tenant holds at its full size (app/core/quotas.py says why), in one statement.
_STORED_BYTES = _stored_bytes_statement()


def stored_bytes(*, tenant_id: str) -> Question[int]:
    return Question(_STORED_BYTES, {"tenant_id": tenant_id}, lambda rows: int(rows[0][0] or 0))
