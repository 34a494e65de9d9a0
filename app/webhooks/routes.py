"""Webhooks over HTTP: POST/GET/DELETE /v1/webhooks and a hook's deliveries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.orm import Session

from app.core.database import get_session
from app.core.settings import Settings
from app.http.auth import Caller, current_caller
from app.http.deps import decode_cursor, encode_cursor, settings
from app.http.sessions import SessionReleasingRoute
from app.webhooks import service
from app.webhooks.schemas import DeliveryOut, DeliveryPage, WebhookCreate, WebhookCreated, WebhookOut

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=SessionReleasingRoute)

SIGNING = ("Each delivery is a POST of JSON `{id, event, created_at, job: {...}}` with the headers "
           "`X-Kerasd-Event`, `X-Kerasd-Delivery` (the same on every attempt: drop one you have seen) and "
           "`X-Kerasd-Signature: sha256=<hex HMAC-SHA256 of the raw body with the hook's secret>`. Workers send "
           "them, retrying network errors, 408, 429 and 5xx answers with growing waits; answer 2xx quickly.")


def webhook_out(row: Any) -> WebhookOut:
    """A hook as the API shows it (a row of the repository's questions, or the new Webhook)."""
    return WebhookOut(id=row.id, url=row.url, events=row.events, description=row.description,
                      created_at=row.created_at, links={"self": f"/v1/webhooks/{row.id}",
                                                        "deliveries": f"/v1/webhooks/{row.id}/deliveries"})


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED,
             summary="Be told when jobs end: a URL kerasd POSTs signed events to; the secret is shown once",
             description="Events: `job.finished`, `job.failed`, `job.cancelled`, `sweep.finished` (default: the "
                         "three job ends). The URL must be http(s) and resolve to public addresses (private, "
                         "loopback and link-local ones are refused unless the server allows them). " + SIGNING)
def create_webhook(body: WebhookCreate, session: Session = Depends(get_session), config: Settings = Depends(settings),
                   caller: Caller = Depends(current_caller)) -> WebhookCreated:
    hook, secret = service.create_webhook(session, tenant_id=caller.tenant_id, url=body.url, events=body.events,
                                          description=body.description, allow_private=config.webhook_allow_private)
    session.commit()
    return WebhookCreated(**webhook_out(hook).model_dump(), secret=secret)


@router.get("", response_model=list[WebhookOut], summary="Your webhooks",
            description="Each hook's URL, events and description; never its secret.")
def list_webhooks(session: Session = Depends(get_session),
                  caller: Caller = Depends(current_caller)) -> list[WebhookOut]:
    return [webhook_out(row) for row in service.list_webhooks(session, tenant_id=caller.tenant_id)]


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook",
            description="Its URL, events and description; never its secret. Another tenant's hook is a 404.")
def get_webhook(webhook_id: str, session: Session = Depends(get_session),
                caller: Caller = Depends(current_caller)) -> WebhookOut:
    return webhook_out(service.get_webhook(session, tenant_id=caller.tenant_id, webhook_id=webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a webhook and the record of its deliveries",
               description="Deliveries not yet sent are dropped with it.")
def delete_webhook(webhook_id: str, session: Session = Depends(get_session),
                   caller: Caller = Depends(current_caller)) -> Response:
    service.delete_webhook(session, tenant_id=caller.tenant_id, webhook_id=webhook_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage,
            summary="What was sent to a webhook: each delivery, its status and every attempt's answer",
            description="Newest first, a page at a time (follow `next`). A delivery is `pending` while attempts "
                        "remain, `delivered` after a 2xx answer, `failed` after its last attempt or an answer "
                        "that is not retried (a 4xx other than 408 and 429, a redirect, a refused address).")
def list_webhook_deliveries(webhook_id: str, limit: int = Query(50, ge=1, le=500),
                    cursor: str | None = Query(None, max_length=200, description="`next_cursor` of the page before"),
                    session: Session = Depends(get_session), caller: Caller = Depends(current_caller)) -> DeliveryPage:
    after = decode_cursor(cursor) if cursor is not None else None
    items, last = service.deliveries(session, tenant_id=caller.tenant_id, webhook_id=webhook_id, limit=limit,
                                     after=after)
    next_cursor = encode_cursor(*last) if last is not None else None
    link = (f"/v1/webhooks/{webhook_id}/deliveries?" + urlencode({"limit": limit, "cursor": next_cursor})
            if next_cursor else None)
    return DeliveryPage(items=[DeliveryOut(**item) for item in items], limit=limit, next=link,
                        next_cursor=next_cursor)
