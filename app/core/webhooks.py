"""Webhooks (DESIGN.md §14): the events, the outbox written where a job ends, the signature, and where a hook may
point. Sending is the workers' (workers/webhooks.py), never the request path's.

A job's end and its deliveries are one transaction (`record_job_end` runs in the caller's): a job never ends
without its notifications being stored, nor is a notification stored for an end that was rolled back. Each
delivery's body is written once, there, so every attempt sends the same bytes under the same signature and
delivery id (at least once; a receiver drops a delivery id it has seen).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from app.core import run_metrics
from app.core.repositories import jobs, sweeps, webhooks
from app.core.sql import ask
from app.core.tables import new_id, utcnow

JOB_EVENTS = {"succeeded": "job.finished", "failed": "job.failed", "cancelled": "job.cancelled"}
EVENTS = (*JOB_EVENTS.values(), "sweep.finished")
SIGNATURE_HEADER = "X-Kerasd-Signature"


def sign(secret: str, body: bytes) -> str:
    """The X-Kerasd-Signature value: `sha256=` and the hex HMAC-SHA256 of the raw body under the hook's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def job_event_body(job: Any, *, delivery_id: str, event: str, created_at: Any, public_url: str,
                   metrics: dict[str, Any]) -> str:
    """The JSON a hook receives when a job ends: the delivery id, the event and the job as a list shows it (its
    metric summaries as `GET /v1/jobs/{id}` answers them), with links (absolute under KERASD_PUBLIC_URL, else
    paths)."""
    fields = job._mapping
    path = f"/v1/jobs/{job.id}"
    base = public_url.rstrip("/")
    document = {
        "id": delivery_id,
        "event": event,
        "created_at": _iso(created_at),
        "job": {
            "id": job.id,
            "name": fields.get("name"),
            "tags": fields.get("tags") or [],
            "status": job.status,
            "kind": job.kind,
            "model_id": job.model_id,
            "attempt": job.attempt,
            "metrics": metrics,
            "error": job.error,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "links": {name: f"{base}{path}{suffix}" for name, suffix in
                      (("self", ""), ("artifacts", "/artifacts"), ("events", "/events"))},
        },
    }
    return json.dumps(document, separators=(",", ":"), default=str)


def record_job_end(executor: Session, *, job_id: str, status: str, public_url: str) -> int:
    """Store one delivery for each of the job's tenant's hooks that take this end's event, in the caller's
    transaction (after the UPDATE that ended the job, so the body shows the ended job); how many."""
    event = JOB_EVENTS.get(status)
    if event is None:
        return 0
    job = ask(executor, webhooks.job_for_event(job_id=job_id))
    if job is None:
        return 0
    hooks = ask(executor, webhooks.subscribers(tenant_id=job.tenant_id, event=event))
    if not hooks:
        return 0
    metrics = {name: {"final": summary.final, "best": summary.best, "best_epoch": summary.best_epoch,
                      "goal": run_metrics.goal(name)}
               for name, summary in ask(executor, jobs.metrics_of(job_id=job_id)).items()}
    now = utcnow()
    for webhook_id in hooks:
        delivery_id = new_id()
        webhooks.add_delivery(
            executor, id=delivery_id, webhook_id=webhook_id, event=event, subject_id=job_id,
            body=job_event_body(job, delivery_id=delivery_id, event=event, created_at=now, public_url=public_url,
                                metrics=metrics),
            status="pending", attempt_count=0, attempts=[], next_attempt_at=now, claimed_by=None, created_at=now,
            finished_at=None)
    return len(hooks)


def record_sweep_end(executor: Session, *, sweep_id: str, public_url: str) -> int:
    """Store a `sweep.finished` delivery for each of the sweep's tenant's hooks that take it, in the caller's
    transaction (after the UPDATE that ended the sweep, completed or cancelled); how many."""
    sweep = ask(executor, sweeps.sweep_for_event(sweep_id=sweep_id))
    if sweep is None:
        return 0
    hooks = ask(executor, webhooks.subscribers(tenant_id=sweep.tenant_id, event="sweep.finished"))
    if not hooks:
        return 0
    direction = sweep.plan["direction"]
    best = ask(executor, sweeps.best_trial(sweep_id=sweep_id, direction=direction))
    now = utcnow()
    base = public_url.rstrip("/")
    for webhook_id in hooks:
        delivery_id = new_id()
        document = {
            "id": delivery_id, "event": "sweep.finished", "created_at": _iso(now),
            "sweep": {"id": sweep.id, "name": sweep.name, "status": sweep.status,
                      "objective": {"metric": sweep.plan["metric"], "direction": direction},
                      "trials_created": sweep.trials_created,
                      "best": None if best is None else {"number": best.number, "job_id": best.job_id,
                                                         "params": best.params, "objective": best.objective},
                      "created_at": _iso(sweep.created_at), "finished_at": _iso(sweep.finished_at),
                      "links": {"self": f"{base}/v1/sweeps/{sweep.id}",
                                "trials": f"{base}/v1/jobs?sweep_id={sweep.id}"}}}
        webhooks.add_delivery(
            executor, id=delivery_id, webhook_id=webhook_id, event="sweep.finished", subject_id=sweep_id,
            body=json.dumps(document, separators=(",", ":"), default=str), status="pending", attempt_count=0,
            attempts=[], next_attempt_at=now, claimed_by=None, created_at=now, finished_at=None)
    return len(hooks)


# --- where a hook may point --------------------------------------------------------------------------------------

class RefusedDestination(ValueError):
    """A URL kerasd will not send to; the message says why and what to do."""


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL a hook may have; RefusedDestination for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedDestination(f"url {url[:100]!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedDestination(f"url {url[:100]!r} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise RefusedDestination("url must not hold a user name or password: the receiver checks the "
                                 f"{SIGNATURE_HEADER} header instead")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(url: str, *, allow_private: bool) -> list[str]:
    """The addresses the URL's host resolves to, each public unless `allow_private`; RefusedDestination when it
    does not resolve or any address is private, loopback, link-local or reserved (a name that resolves to both
    could be answered with either)."""
    _scheme, host, port = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:  # gaierror, a name IDNA refuses, a NUL in the name
        raise RefusedDestination(f"the host {host!r} of the url does not resolve ({exc}); give a host this "
                                 "server can reach") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        private = [address for address in addresses if not _public(ipaddress.ip_address(address.split("%")[0]))]
        if private:
            raise RefusedDestination(
                f"the host {host!r} resolves to {', '.join(private)}, which is not a public address: webhooks go "
                "to public addresses only (an operator may allow private ones with KERASD_WEBHOOK_ALLOW_PRIVATE)")
    return addresses
