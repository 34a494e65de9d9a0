"""Webhooks as the API takes and answers them: a subscription, its secret once, its deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventName = Literal["job.finished", "job.failed", "job.cancelled", "sweep.finished"]
JOB_ENDS: list[EventName] = ["job.finished", "job.failed", "job.cancelled"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, examples=["https://ci.example.com/hooks/kerasd"],
                     description="http:// or https://; kerasd POSTs each event here. Must resolve to public "
                                 "addresses unless the server allows private ones (KERASD_WEBHOOK_ALLOW_PRIVATE).")
    events: list[EventName] = Field(default_factory=lambda: list(JOB_ENDS), min_length=1, max_length=4,
                                    description="which ends to be told of (default: the three job ends)")
    description: str = Field("", max_length=200, pattern=r"^[^\x00]*$", description="what the hook is for")


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime
    links: dict[str, str]


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the signing secret, shown this once: verify each delivery's "
                                    "X-Kerasd-Signature with it (HMAC-SHA256 of the raw body)")


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None = Field(description="the receiver's answer; null when none came (error says why)")
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    id: str = Field(description="also the X-Kerasd-Delivery header: the same on every attempt (idempotency key)")
    webhook_id: str
    event: str
    subject_id: str = Field(description="the job (or sweep) the event is about")
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    attempts: list[DeliveryAttempt]
    created_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when a pending delivery is tried next; null otherwise")
    body: dict[str, Any] = Field(description="the JSON every attempt sent")


class DeliveryPage(BaseModel):
    """A hook's deliveries, newest first; follow `next` for older ones."""

    items: list[DeliveryOut]
    limit: int
    next: str | None
    next_cursor: str | None
