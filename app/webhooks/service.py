"""Webhooks: subscribe a URL to a tenant's job and sweep ends, list and delete subscriptions, read the deliveries.

Nothing here sends anything: deliveries are stored where a job ends (app/core/webhooks.py) and sent by the workers
(workers/webhooks.py), never from a request.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import Problem, not_found
from app.core.quotas import lock_tenant
from app.core.sql import ask
from app.core.webhooks import RefusedDestination, resolve
from app.webhooks import repository

# A tenant's hooks are read whole at every end of its jobs: a few, not thousands.
MAX_WEBHOOKS_PER_TENANT = 20


def create_webhook(session: Session, *, tenant_id: str, url: str, events: list[str], description: str,
                   allow_private: bool) -> tuple[Any, str]:
    """(the new hook, its secret); the URL is checked here (scheme, host that resolves, public addresses unless
    allowed) and again before every delivery."""
    try:
        resolve(url, allow_private=allow_private)
    except RefusedDestination as exc:
        raise Problem(422, "Refused Webhook URL", str(exc), field="url") from None
    # Under the tenant's lock, so that two creations at once cannot both take the last place.
    lock_tenant(session, tenant_id)
    if ask(session, repository.count_of(tenant_id=tenant_id)) >= MAX_WEBHOOKS_PER_TENANT:
        raise Problem(409, "Too Many Webhooks", f"A tenant has at most {MAX_WEBHOOKS_PER_TENANT} webhooks; delete "
                      "one (DELETE /v1/webhooks/{id}) or give one hook several events.")
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = repository.insert_webhook(session, tenant_id=tenant_id, url=url, events=list(dict.fromkeys(events)),
                                     description=description, secret=secret)
    return hook, secret


def list_webhooks(session: Session, *, tenant_id: str) -> list[Any]:
    return ask(session, repository.hooks_of(tenant_id=tenant_id))


def get_webhook(session: Session, *, tenant_id: str, webhook_id: str) -> Any:
    hook = ask(session, repository.hook_of(tenant_id=tenant_id, webhook_id=webhook_id))
    if hook is None:
        raise not_found("webhook", webhook_id)
    return hook


def delete_webhook(session: Session, *, tenant_id: str, webhook_id: str) -> None:
    if not repository.delete_hook(session, tenant_id=tenant_id, webhook_id=webhook_id):
        raise not_found("webhook", webhook_id)


def deliveries(session: Session, *, tenant_id: str, webhook_id: str, limit: int,
               after: tuple[datetime, str] | None) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """A page of the hook's deliveries, newest first, as DeliveryOut fields."""
    get_webhook(session, tenant_id=tenant_id, webhook_id=webhook_id)
    rows, last = ask(session, repository.deliveries_page(webhook_id=webhook_id, limit=limit, after=after))
    items = [{"id": row.id, "webhook_id": row.webhook_id, "event": row.event, "subject_id": row.subject_id,
              "status": row.status, "attempt_count": row.attempt_count, "attempts": row.attempts or [],
              "created_at": row.created_at, "finished_at": row.finished_at,
              "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
              "body": json.loads(row.body)} for row in rows]
    return items, last
