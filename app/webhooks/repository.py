"""The webhook tables as the API asks them: a tenant's hooks (made, listed, found, deleted) and a hook's
deliveries a page at a time. What the workers ask too (the outbox, the senders' claims) is in
app/core/repositories/webhooks.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, tuple_
from sqlalchemy.orm import Session

from app.core.scope import ID, added
from app.core.sql import Question, Statement, ask, one, scalar
from app.core.tables import Webhook, WebhookDelivery

HOOKS, DELIVERIES = Webhook.__table__, WebhookDelivery.__table__
_OUT = (HOOKS.c.id, HOOKS.c.url, HOOKS.c.events, HOOKS.c.description, HOOKS.c.created_at)
_OF_TENANT = Statement(select(*_OUT).where(HOOKS.c.tenant_id == bindparam("tenant_id"))
                       .order_by(HOOKS.c.created_at, HOOKS.c.id))
_ONE = Statement(select(*_OUT).where(HOOKS.c.id == bindparam("webhook_id"),
                                     HOOKS.c.tenant_id == bindparam("tenant_id")))
_COUNT = Statement(select(func.count()).select_from(HOOKS).where(HOOKS.c.tenant_id == bindparam("tenant_id")))
_DELETE = Statement(delete(HOOKS).where(HOOKS.c.id == bindparam("webhook_id"),
                                        HOOKS.c.tenant_id == bindparam("tenant_id")).returning(HOOKS.c.id))
_NEWEST_FIRST = (DELIVERIES.c.created_at.desc(), DELIVERIES.c.id.desc())
_PAGE = Statement(select(DELIVERIES).where(DELIVERIES.c.webhook_id == bindparam("webhook_id"))
                  .order_by(*_NEWEST_FIRST).limit(bindparam("limit")))
_AFTER = tuple_(bindparam("after_created_at", type_=DELIVERIES.c.created_at.type), bindparam("after_id"))
_PAGE_AFTER = Statement(select(DELIVERIES).where(DELIVERIES.c.webhook_id == bindparam("webhook_id"),
                                                 tuple_(DELIVERIES.c.created_at, DELIVERIES.c.id) < _AFTER)
                        .order_by(*_NEWEST_FIRST).limit(bindparam("limit")))


def insert_webhook(session: Session, **values: Any) -> Webhook:
    return added(session, Webhook(**values))


def hooks_of(*, tenant_id: str) -> Question[list[Any]]:
    """The tenant's hooks (id, url, events, description, created_at), oldest first."""
    return Question(_OF_TENANT, {"tenant_id": tenant_id})


def hook_of(*, tenant_id: str, webhook_id: str) -> Question[Any]:
    """The tenant's hook, or None; another tenant's is as missing as one that never was."""
    if not ID.match(webhook_id):
        return Question(_ONE, {"webhook_id": "-", "tenant_id": "-"}, lambda rows: None)
    return Question(_ONE, {"webhook_id": webhook_id, "tenant_id": tenant_id}, one)


def count_of(*, tenant_id: str) -> Question[int]:
    return Question(_COUNT, {"tenant_id": tenant_id}, scalar)


def delete_hook(session: Session, *, tenant_id: str, webhook_id: str) -> bool:
    """Delete the tenant's hook and its deliveries (sent or not: a pending one is never sent); whether it was."""
    if not ID.match(webhook_id):
        return False
    return bool(ask(session, Question(_DELETE, {"webhook_id": webhook_id, "tenant_id": tenant_id})))


def deliveries_page(*, webhook_id: str, limit: int,
                    after: tuple[datetime, str] | None) -> Question[tuple[list[Any], tuple[datetime, str] | None]]:
    """(rows, the last row's (created_at, id) if more follow) of a hook's deliveries, newest first, past `after`."""
    params: dict[str, Any] = {"webhook_id": webhook_id, "limit": limit + 1}
    if after is not None:
        params["after_created_at"], params["after_id"] = after

    def shape(rows: list[Any]) -> tuple[list[Any], tuple[datetime, str] | None]:
        more = len(rows) > limit
        return rows[:limit], (rows[limit - 1].created_at, rows[limit - 1].id) if more else None
    return Question(_PAGE if after is None else _PAGE_AFTER, params, shape)
