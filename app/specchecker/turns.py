"""Who gets the spec checker's next free sandbox: per-tenant caps, a bounded wait, and turns across tenants.

A spec check holds a sandbox for as long as Keras takes (seconds, up to the checker's timeout), so one tenant
sending large models could hold every sandbox while everyone else's checks waited in a FIFO behind it (four 60 s
checks made another tenant's one-layer model wait 240 s). Here a tenant may have `per_tenant` checks in the
checker at once (429 beyond), may hold at most all sandboxes but one while the pool has more than one (another
tenant's check always finds one within a check's time), and a freed sandbox goes to the waiting tenants in turn
(round robin), not to whoever came first. At most `max_waiting` checks wait, each at most `wait_s`: beyond, a
fast 503, never an unbounded wait.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from typing import Generic, TypeVar

Slot = TypeVar("Slot")

# Seconds a refused caller is told to wait before trying again (Retry-After).
RETRY_AFTER_S = 5


class CheckerBusy(RuntimeError):
    """The checker cannot take this check now: `status` 429 (this tenant's cap) or 503 (the checker is full)."""

    def __init__(self, status: int, message: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after_s = status, message, retry_after_s


class _Waiter(Generic[Slot]):
    def __init__(self) -> None:
        self.slot: Slot | None = None


class Turns(Generic[Slot]):
    """Hands out slots (sandboxes) to tenants fairly. `None` as tenant: the server itself (no per-tenant cap)."""

    def __init__(self, *, size: int, per_tenant: int, max_waiting: int, wait_s: float) -> None:
        self._cond = threading.Condition()
        self._idle: list[Slot] = []
        self._size = size
        self._per_tenant, self._max_waiting, self._wait_s = per_tenant, max_waiting, wait_s
        self._checks: Counter[str] = Counter()  # in the checker: holding a slot or waiting for one
        self._held: Counter[str | None] = Counter()
        self._waiting: OrderedDict[str | None, deque[_Waiter[Slot]]] = OrderedDict()

    def _may_hold(self, tenant: str | None) -> bool:
        return tenant is None or self._size < 2 or self._held[tenant] < self._size - 1

    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def acquire(self, tenant: str | None) -> Slot:
        with self._cond:
            if tenant is not None and self._checks[tenant] >= self._per_tenant:
                raise CheckerBusy(429, f"your tenant already has {self._checks[tenant]} spec checks in the checker, "
                                  f"its limit (KERASD_SPEC_CHECKS_PER_TENANT); send this one when one of them is "
                                  "answered")
            if self._idle and not self._waiting and self._may_hold(tenant):
                self._count(tenant, +1)
                self._held[tenant] += 1
                return self._idle.pop()
            if self.waiting() >= self._max_waiting:
                raise CheckerBusy(503, f"the spec checker is busy: {self.waiting()} checks are waiting for it")
            self._count(tenant, +1)
            waiter: _Waiter[Slot] = _Waiter()
            self._waiting.setdefault(tenant, deque()).append(waiter)
            self._hand_out()  # an idle slot the tenants ahead may not hold can be this one's
            deadline = time.monotonic() + self._wait_s
            while waiter.slot is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._count(tenant, -1)
                    self._forget(tenant, waiter)
                    raise CheckerBusy(503, f"the spec checker is busy: no sandbox came free within "
                                      f"{self._wait_s:.0f} s")
                self._cond.wait(left)
            return waiter.slot  # counted as held by _hand_out

    def _count(self, tenant: str | None, change: int) -> None:
        if tenant is not None:
            self._checks[tenant] += change
            if self._checks[tenant] <= 0:
                del self._checks[tenant]

    def release(self, tenant: str | None, slot: Slot | None) -> None:
        """Give the slot back (None: it is gone, and a replacement comes with `add`)."""
        with self._cond:
            self._count(tenant, -1)
            self._held[tenant] -= 1
            if self._held[tenant] <= 0:
                del self._held[tenant]
            if slot is not None:
                self._idle.append(slot)
            self._hand_out()

    def add(self, slot: Slot) -> None:
        with self._cond:
            self._idle.append(slot)
            self._hand_out()

    def _forget(self, tenant: str | None, waiter: _Waiter[Slot]) -> None:
        queue = self._waiting.get(tenant)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[tenant]

    def _hand_out(self) -> None:
        """Idle slots to waiting tenants, one tenant after another (called with the lock held)."""
        while self._idle:
            tenant = next((t for t in self._waiting if self._may_hold(t)), _NOBODY)
            if tenant is _NOBODY:
                return
            queue = self._waiting.pop(tenant)
            waiter = queue.popleft()
            if queue:
                self._waiting[tenant] = queue  # back of the line: the next slot goes to the next tenant
            waiter.slot = self._idle.pop()
            # Counted as held now, so the tenant's next waiter is not handed a slot it may not hold.
            self._held[tenant] += 1
            self._cond.notify_all()


_NOBODY = object()
