"""The webhook sender (DESIGN.md §14): every worker runs one in threads, beside the reaper, and POSTs the deliveries
the outbox holds (app/core/webhooks.py), signed, retried with backoff, each attempt recorded with its answer.

A delivery is claimed by one sender (a guarded UPDATE, app/core/repositories/webhooks.py) and tried up to
KERASD_WEBHOOK_MAX_ATTEMPTS times in all: on network errors, 408, 429 and 5xx answers, waiting longer each time
(tenacity's exponential backoff with jitter); a 2xx delivers it; any other answer (a 4xx, a redirect) or a
refused address fails it at once. Every attempt moves the claim past the next wait, so a sender lost mid-way
leaves the delivery to another one with the attempts it has left. Each POST goes to the address the check
approved (the connection is pinned to it, the Host header and TLS name stay the URL's), so a DNS answer that
changes between the check and the connection cannot point a hook at a private address.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

import app
from app.core.database import session_scope
from app.core.repositories import webhooks
from app.core.settings import Settings
from app.core.sql import ask
from app.core.tables import utcnow
from app.core.webhooks import SIGNATURE_HEADER, RefusedDestination, resolve, sign

log = logging.getLogger("kerasd.webhooks")
RETRIED_STATUSES = {408, 429}


class TryAgain(Exception):
    """This attempt failed in a way a later one may not (no answer, 408, 429, 5xx)."""


class Stopping(Exception):
    """The worker is stopping: hand the delivery back with the attempts it has left."""


class WebhookSender:
    """Claims due deliveries every KERASD_WEBHOOK_POLL_S (or at once after `wake()`) and sends up to
    KERASD_WEBHOOK_CONCURRENCY of them at a time."""

    def __init__(self, *, settings: Settings, owner: str) -> None:
        self._settings = settings
        self._owner = owner
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._free = threading.Semaphore(settings.webhook_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=settings.webhook_concurrency, thread_name_prefix="webhook")
        timeout = settings.webhook_timeout_s
        # No redirects (a receiver answers, it does not send us elsewhere), no proxies from the environment (the
        # connection is pinned to a checked address).
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False,
                                  headers={"User-Agent": f"kerasd-webhooks/{app.__version__}"})
        # How long one attempt and the wait after it may take: a claim lasts that long past each attempt.
        self._claim_s = 3 * timeout + settings.webhook_backoff_max_s + 2 * settings.webhook_backoff_s + 5
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for due deliveries now (a job just ended on this worker)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception:  # the database may be away for a moment; the next round tries again
                log.exception("webhook round failed")
            self._wake.wait(self._settings.webhook_poll_s)
            self._wake.clear()

    def send_due(self) -> int:
        """Claim what is due, as many as there are free senders, and hand each to one; how many."""
        sent = 0
        while not self._stop.is_set() and self._free.acquire(blocking=False):
            claimed = self._claim_one()
            if claimed is None:
                self._free.release()
                break
            self._pool.submit(self._send, *claimed)
            sent += 1
        return sent

    def _claim_one(self) -> tuple[Any, Any] | None:
        now = utcnow()
        with session_scope() as session:
            for delivery_id in ask(session, webhooks.due(now=now, limit=5)):
                delivery = webhooks.claim(session, delivery_id=delivery_id, owner=self._owner, now=now,
                                          until=now + timedelta(seconds=self._claim_s))
                if delivery is not None:
                    return delivery, ask(session, webhooks.hook(webhook_id=delivery.webhook_id))
        return None

    def _send(self, delivery: Any, hook: Any) -> None:
        try:
            if hook is not None:  # else the hook was deleted after the claim, and its deliveries with it
                self._attempts(delivery, hook)
        except Stopping:
            with session_scope() as session:
                webhooks.release(session, delivery_id=delivery.id, next_at=utcnow())
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly; it is tried again when its claim runs out",
                          delivery.id)
        finally:
            self._free.release()

    def _attempts(self, delivery: Any, hook: Any) -> None:
        settings = self._settings
        left = max(1, settings.webhook_max_attempts - delivery.attempt_count)
        retrying = Retrying(stop=stop_after_attempt(left), retry=retry_if_exception_type(TryAgain), reraise=True,
                            wait=wait_exponential_jitter(initial=settings.webhook_backoff_s,
                                                         max=settings.webhook_backoff_max_s,
                                                         jitter=settings.webhook_backoff_s),
                            sleep=self._stop.wait)
        try:
            for attempt in retrying:
                with attempt:
                    if self._stop.is_set():
                        raise Stopping()
                    number = delivery.attempt_count + attempt.retry_state.attempt_number
                    self._attempt(delivery, hook, number=number, last=number >= settings.webhook_max_attempts)
        except TryAgain:
            pass  # the last attempt; recorded as failed

    def _attempt(self, delivery: Any, hook: Any, *, number: int, last: bool) -> None:
        """One POST, recorded: delivered, failed, or pending with TryAgain raised."""
        body = delivery.body.encode()
        headers = {"Content-Type": "application/json", "X-Kerasd-Event": delivery.event,
                   "X-Kerasd-Delivery": delivery.id, "X-Kerasd-Attempt": str(number),
                   SIGNATURE_HEADER: sign(hook.secret, body)}
        at, started = utcnow(), time.monotonic()
        status_code, error, again = None, None, False
        try:
            addresses = resolve(hook.url, allow_private=self._settings.webhook_allow_private)
            status_code = self._post(hook.url, addresses, body, headers)
            again = status_code in RETRIED_STATUSES or status_code >= 500
            if not 200 <= status_code < 300:
                error = f"the receiver answered {status_code}"
        except RefusedDestination as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error, again = f"{type(exc).__name__}: {exc}"[:500], True
        record = {"at": at.isoformat(), "status_code": status_code, "error": error,
                  "duration_ms": round((time.monotonic() - started) * 1000, 1)}
        done = status_code is not None and 200 <= status_code < 300
        state = "delivered" if done else "pending" if again and not last else "failed"
        now = utcnow()
        with session_scope() as session:
            webhooks.record_attempt(session, delivery_id=delivery.id, attempt=record, status=state,
                                    next_at=now + timedelta(seconds=self._claim_s),
                                    finished_at=None if state == "pending" else now)
        log.info("webhook delivery %s (%s) attempt %d: %s", delivery.id, delivery.event, number,
                 status_code if status_code is not None else error)
        if state == "pending":
            raise TryAgain(error)

    def _post(self, url: str, addresses: list[str], body: bytes, headers: dict[str, str]) -> int:
        """POST to the first of the checked addresses that takes the connection; the answer's status (its body is
        not read)."""
        target = httpx.URL(url)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        for index, address in enumerate(addresses):
            try:
                with self._http.stream("POST", target.copy_with(host=address), content=body,
                                       headers={**headers, "Host": target.netloc.decode("ascii")},
                                       extensions=extensions) as response:
                    return response.status_code
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise httpx.ConnectError(f"no address to connect to for {target.host}")
