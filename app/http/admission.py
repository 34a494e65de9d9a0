"""Bounded work decided before the work starts: failed authentications per client address, concurrent
uploads and event streams per tenant, and how slowly a client may send a body.

All three are per API process and in memory: they must answer before any SQL, Redis or body byte is spent, and
a process that dies takes its counts with it (nothing to leak in a shared store). A deployment of N API
processes lets a tenant have N times each cap, which the settings' documentation says.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from app.core.errors import Problem
from app.core.settings import Settings, get_settings

# Addresses remembered at most; the least recently seen is forgotten first (a flood of addresses cannot grow
# the process, and an address forgotten starts again with a full bucket, which is all it could have had).
MAX_ADDRESSES = 100_000


class AuthFailures:
    """A token bucket of failed authentications per client address: each 401 for a presented key takes one;
    an address with none left is answered 429 before its next unknown key is looked up in SQL.

    A key this process has accepted before (by its sha256) is looked up whatever its address's bucket holds: users
    behind the same address as an attacker (a NAT, a proxy) keep working; an attacker cannot present such a digest
    without holding a valid key, and SQL still decides whether it is valid now."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s, self.burst = rate_per_s, max(1, burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._accepted: OrderedDict[str, None] = OrderedDict()

    def accepted(self, digest: str) -> None:
        self._accepted[digest] = None
        self._accepted.move_to_end(digest)
        while len(self._accepted) > MAX_ADDRESSES:
            self._accepted.popitem(last=False)

    def was_accepted(self, digest: str) -> bool:
        return digest in self._accepted

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate_per_s)

    def check(self, address: str | None) -> None:
        if self.rate_per_s <= 0 or address is None:
            return
        now = time.monotonic()
        tokens = self._tokens(address, now)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.rate_per_s)
            raise Problem(429, "Too Many Requests", f"Too many requests from this address presented API keys that "
                          f"are not valid (at most {self.burst} at once, then {self.rate_per_s:g} a second); wait "
                          f"{wait} s (Retry-After) and send a valid key.", headers={"Retry-After": str(wait)},
                          retry_after_s=wait)

    def failed(self, address: str | None) -> None:
        if self.rate_per_s <= 0 or address is None:
            return
        now = time.monotonic()
        self._buckets[address] = (max(0.0, self._tokens(address, now) - 1), now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > MAX_ADDRESSES:
            self._buckets.popitem(last=False)


def auth_failures(state: object) -> AuthFailures:
    limiter = getattr(state, "auth_failures", None)
    if limiter is None:
        settings = get_settings()
        limiter = AuthFailures(settings.auth_failures_per_s_per_address, settings.auth_failure_burst)
        state.auth_failures = limiter  # type: ignore[attr-defined]
    return limiter


class TenantSlots:
    """At most `limit` of one kind of long-lived request (uploads, event streams) per tenant at once, and (for
    streams) at most `process_limit` in the whole process; one more is refused with `Retry-After` before it
    starts: 429 over the tenant's cap, 503 over the process's."""

    def __init__(self, kind: str, limit: int, setting: str, *, process_limit: int = 0, process_setting: str = "",
                 retry_after_s: int = 5) -> None:
        self.kind, self.limit, self.setting = kind, limit, setting
        self.process_limit, self.process_setting, self.retry_after_s = process_limit, process_setting, retry_after_s
        self.held: dict[str, int] = {}
        self.total = 0

    def take(self, tenant_id: str) -> None:
        if self.limit > 0 and self.held.get(tenant_id, 0) >= self.limit:
            # Connection: close, so that an upload's unread body is not drained by the server.
            raise Problem(429, "Too Many Requests", f"Your tenant already has {self.limit} {self.kind} open on this "
                          f"API process, its limit ({self.setting}); wait for one to end, or retry after "
                          f"{self.retry_after_s} s.", headers={"Retry-After": str(self.retry_after_s),
                                                               "Connection": "close"},
                          retry_after_s=self.retry_after_s)
        if self.process_limit > 0 and self.total >= self.process_limit:
            raise Problem(503, "Service Unavailable", f"This API process serves {self.process_limit} {self.kind} "
                          f"at once ({self.process_setting}) and all are taken; retry after {self.retry_after_s} s.",
                          headers={"Retry-After": str(self.retry_after_s)}, retry_after_s=self.retry_after_s)
        self.held[tenant_id] = self.held.get(tenant_id, 0) + 1
        self.total += 1

    def give_back(self, tenant_id: str) -> None:
        left = self.held.get(tenant_id, 0) - 1
        if left > 0:
            self.held[tenant_id] = left
        else:
            self.held.pop(tenant_id, None)
        self.total = max(0, self.total - 1)

    @contextmanager
    def slot(self, tenant_id: str) -> Iterator[None]:
        self.take(tenant_id)
        try:
            yield
        finally:
            self.give_back(tenant_id)


def upload_slots(state: object) -> TenantSlots:
    slots = getattr(state, "upload_slots", None)
    if slots is None:
        slots = state.upload_slots = TenantSlots(  # type: ignore[attr-defined]
            "uploads", get_settings().max_uploads_per_tenant, "KERASD_MAX_UPLOADS_PER_TENANT")
    return slots


def stream_slots(state: object) -> TenantSlots:
    slots = getattr(state, "stream_slots", None)
    if slots is None:
        settings = get_settings()
        slots = state.stream_slots = TenantSlots(  # type: ignore[attr-defined]
            "event streams", settings.max_streams_per_tenant, "KERASD_MAX_STREAMS_PER_TENANT",
            process_limit=settings.max_streams_per_process, process_setting="KERASD_MAX_STREAMS_PER_PROCESS")
    return slots


class BodyTimeout(StarletteHTTPException):
    """A client sent its body too slowly. An HTTPException, so FastAPI's body parsing re-raises it untouched and
    the problem handlers answer it; the connection is closed after the answer."""

    title = "Request Timeout"

    def __init__(self, detail: str) -> None:
        super().__init__(408, detail=detail, headers={"Connection": "close"})


def body_deadline_error(received: int, elapsed: float, settings: Settings) -> str:
    return (f"The request body arrived too slowly: {received:,} bytes in {elapsed:.0f} s. A body must arrive at "
            f"{settings.min_body_bytes_per_s:,} bytes a second or faster after its first "
            f"{settings.body_grace_s:g} s (KERASD_MIN_BODY_BYTES_PER_S, KERASD_BODY_GRACE_S), with no pause longer "
            f"than {settings.body_idle_timeout_s:g} s (KERASD_BODY_IDLE_TIMEOUT_S); send it again from a faster "
            "connection.")


def deadline_receive(receive: Receive, settings: Settings) -> Receive:
    """`receive` that raises BodyTimeout once the body falls behind the minimum rate or pauses too long: by
    `grace + received / rate` seconds after the first receive at the latest, each message within the idle
    timeout."""
    rate, grace, idle = settings.min_body_bytes_per_s, settings.body_grace_s, settings.body_idle_timeout_s
    started: float | None = None
    received = 0
    done = False

    async def receive_in_time() -> Message:
        nonlocal started, received, done
        if done:
            return await receive()  # after the body: http.disconnect, which must be waited for without a deadline
        now = time.monotonic()
        if started is None:
            started = now
        limits = [idle] if idle > 0 else []
        if rate > 0:
            limits.append(started + grace + received / rate - now)
        try:
            if limits:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(limits)))
            else:
                message = await receive()
        except TimeoutError:
            raise BodyTimeout(body_deadline_error(received, time.monotonic() - started, settings)) from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            done = not message.get("more_body", False)
        else:
            done = True
        return message

    return receive_in_time
