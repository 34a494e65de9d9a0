"""The webhook tables as both processes ask them: the outbox written where a job ends (the worker, the reaper, a
cancel in the API) and the senders' questions (due deliveries, the claim, each attempt). The API's own questions
(a tenant's hooks, a hook's deliveries) are in app/webhooks/repository.py.

A sender claims a delivery with a guarded UPDATE (it moves `next_attempt_at` past its attempts only if the
delivery is still pending and due), the same way on PostgreSQL and SQLite, so two workers never both own it; one
that is lost mid-way leaves it due again when its claim runs out.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from app.core.sql import Question, Statement, ask, one
from app.core.tables import Job, Webhook, WebhookDelivery

Executor = Session | Connection
HOOKS, DELIVERIES, JOBS = Webhook.__table__, WebhookDelivery.__table__, Job.__table__

_HOOKS_OF_TENANT = Statement(select(HOOKS.c.id, HOOKS.c.events).where(HOOKS.c.tenant_id == bindparam("tenant_id")))
# Every column of the job but the stored request (large, and not part of any event): columns added to jobs reach the
# event's body without a change here.
_JOB = Statement(select(*[column for column in JOBS.c if column.name != "request"])
                 .where(JOBS.c.id == bindparam("job_id")))
_INSERT = Statement(insert(DELIVERIES))
_DUE = Statement(select(DELIVERIES.c.id).where(DELIVERIES.c.status == "pending",
                                                DELIVERIES.c.next_attempt_at <= bindparam("now"))
                 .order_by(DELIVERIES.c.next_attempt_at).limit(bindparam("limit")))
_CLAIM = Statement(update(DELIVERIES)
                   .where(DELIVERIES.c.id == bindparam("delivery_id"), DELIVERIES.c.status == "pending",
                          DELIVERIES.c.next_attempt_at <= bindparam("now"))
                   .values(next_attempt_at=bindparam("until"), claimed_by=bindparam("owner"))
                   .returning(DELIVERIES.c.id, DELIVERIES.c.webhook_id, DELIVERIES.c.event, DELIVERIES.c.body,
                              DELIVERIES.c.attempt_count))
_HOOK = Statement(select(HOOKS.c.url, HOOKS.c.secret).where(HOOKS.c.id == bindparam("webhook_id")))
# One attempt, appended to the JSON list in the same UPDATE as the delivery's new state; only while it is pending
# (a delivery some other sender finished meanwhile keeps what that one recorded).
_SET_STATE = ("status = :new_status, attempt_count = attempt_count + 1, next_attempt_at = :next_at, "
              "finished_at = :finished_at")
_RECORD_TYPES = (bindparam("next_at", type_=DateTime(timezone=True)),
                 bindparam("finished_at", type_=DateTime(timezone=True)))
_RECORD = Statement(
    postgresql=text(f"UPDATE webhook_deliveries SET {_SET_STATE}, attempts = CAST(CAST(attempts AS jsonb) || "
                    "CAST(:attempt_list AS jsonb) AS json) WHERE id = :delivery_id AND status = 'pending'"
                    ).bindparams(*_RECORD_TYPES),
    sqlite=text(f"UPDATE webhook_deliveries SET {_SET_STATE}, attempts = json_insert(attempts, '$[#]', "
                "json(:attempt)) WHERE id = :delivery_id AND status = 'pending'").bindparams(*_RECORD_TYPES),
)
_RELEASE = Statement(update(DELIVERIES).where(DELIVERIES.c.id == bindparam("delivery_id"),
                                              DELIVERIES.c.status == "pending")
                     .values(next_attempt_at=bindparam("next_at")))


def subscribers(*, tenant_id: str, event: str) -> Question[list[str]]:
    """The ids of the tenant's hooks that take `event` (a tenant has a few hooks: read them all, keep those)."""
    return Question(_HOOKS_OF_TENANT, {"tenant_id": tenant_id},
                    lambda rows: [row.id for row in rows if event in (row.events or [])])


def job_for_event(*, job_id: str) -> Question[Any]:
    """The job's row (every column but its request), or None."""
    return Question(_JOB, {"job_id": job_id}, one)


def add_delivery(executor: Executor, **row: Any) -> None:
    ask(executor, Question(_INSERT, row))


def due(*, now: datetime, limit: int) -> Question[list[str]]:
    """Pending deliveries whose time has come, the longest waiting first (the partial index of pending ones)."""
    return Question(_DUE, {"now": now, "limit": limit}, lambda rows: [row[0] for row in rows])


def claim(executor: Executor, *, delivery_id: str, owner: str, now: datetime, until: datetime) -> Any:
    """The delivery (id, webhook_id, event, body, attempt_count) if this sender took it, else None."""
    return ask(executor, Question(_CLAIM, {"delivery_id": delivery_id, "owner": owner, "now": now, "until": until},
                                  one))


def hook(*, webhook_id: str) -> Question[Any]:
    """The hook's (url, secret), or None once it was deleted."""
    return Question(_HOOK, {"webhook_id": webhook_id}, one)


def record_attempt(executor: Executor, *, delivery_id: str, attempt: dict[str, Any], status: str,
                   next_at: datetime, finished_at: datetime | None) -> None:
    """Append one attempt and set the delivery's state: `pending` (due again at `next_at`), `delivered` or
    `failed`."""
    ask(executor, Question(_RECORD, {"delivery_id": delivery_id, "attempt": json.dumps(attempt),
                                     "attempt_list": json.dumps([attempt]), "new_status": status,
                                     "next_at": next_at, "finished_at": finished_at}))


def release(executor: Executor, *, delivery_id: str, next_at: datetime) -> None:
    """Hand a claimed delivery back, due at `next_at` (a sender stopping between attempts)."""
    ask(executor, Question(_RELEASE, {"delivery_id": delivery_id, "next_at": next_at}))
