"""The webhooks' tables: a tenant's subscriptions, and each event's delivery to one of them (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.tables import Base, new_id, utcnow


class Webhook(Base):
    """A tenant's subscription: `events` (app/core/webhooks.py: EVENTS) are POSTed to `url`, signed with `secret`.
    The secret is kept as it is (not hashed like an API key): the server signs with it. It is shown once, at creation.
    """

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]]
    description: Mapped[str] = mapped_column(String(200), default="")
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


PENDING = text("status = 'pending'")


class WebhookDelivery(Base):
    """One event for one webhook (the outbox, DESIGN.md §14): written in the transaction that ends the job, POSTed by
    a worker's sender (workers/webhooks.py). `body` is the exact JSON every attempt sends, so a retry is the same
    bytes with the same signature, and `id` is the idempotency key a receiver sees as X-Kerasd-Delivery."""

    __tablename__ = "webhook_deliveries"
    # Due deliveries for the senders (pending ones only), and a hook's deliveries newest first for its list.
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=PENDING, sqlite_where=PENDING),
        Index("ix_webhook_deliveries_hook_created", "webhook_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    # The job (or sweep) the event is about; no foreign key: deleting a job keeps the record of what was sent.
    subject_id: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # [{"at", "status_code" (null: no answer), "error", "duration_ms"}, ...] in order.
    attempts: Mapped[list[Any]]
    # A pending delivery is due at this time; a sender that claims it moves it past its attempts, so a sender lost
    # mid-way leaves it to another one then.
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
