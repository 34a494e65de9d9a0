"""The spec checker's turns (app/specchecker/turns.py) with real threads: caps, bounded waits, round robin."""

from __future__ import annotations

import threading

import pytest

from app.specchecker.turns import CheckerBusy, Turns


def turns(size: int = 2, **limits) -> Turns[str]:
    found: Turns[str] = Turns(size=size, **{"per_tenant": 4, "max_waiting": 16, "wait_s": 30.0, **limits})
    for index in range(size):
        found.add(f"sandbox-{index}")
    return found


def waiting_thread(pool: Turns[str], tenant: str, order: list[str]) -> threading.Thread:
    def take() -> None:
        slot = pool.acquire(tenant)
        order.append(tenant)
        pool.release(tenant, slot)

    thread = threading.Thread(target=take)
    thread.start()
    return thread


def wait_until_waiting(pool: Turns[str], count: int) -> None:
    for _ in range(1000):
        if pool.waiting() == count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{pool.waiting()} waiting, not {count}")


def test_one_tenant_never_holds_every_sandbox():
    pool = turns(size=2, wait_s=0.5)
    held = pool.acquire("a")
    with pytest.raises(CheckerBusy) as refused:
        pool.acquire("a")  # a sandbox is idle, but it is left for the other tenants
    assert refused.value.status == 503
    assert pool.acquire("b") != held  # another tenant takes it at once


def test_a_tenants_checks_beyond_its_cap_are_429():
    pool = turns(size=1, per_tenant=2, wait_s=5.0)
    first = pool.acquire("a")
    order: list[str] = []
    second = waiting_thread(pool, "a", order)
    wait_until_waiting(pool, 1)
    with pytest.raises(CheckerBusy) as refused:
        pool.acquire("a")
    assert refused.value.status == 429 and refused.value.retry_after_s > 0
    pool.release("a", first)
    second.join()
    assert order == ["a"]


def test_a_full_queue_is_503_at_once_and_a_long_wait_is_503():
    pool = turns(size=1, max_waiting=1, wait_s=2.0)
    held = pool.acquire("a")
    outcome: list[CheckerBusy] = []

    def wait_for_one() -> None:
        try:
            pool.acquire("b")
        except CheckerBusy as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_one)
    waiter.start()
    wait_until_waiting(pool, 1)
    with pytest.raises(CheckerBusy) as full:
        pool.acquire("c")  # the one waiting place is taken: refused at once
    assert full.value.status == 503 and "waiting" in full.value.message
    waiter.join()
    assert outcome[0].status == 503 and "within 2 s" in outcome[0].message  # b gave up after the wait bound
    assert pool.waiting() == 0
    pool.release("a", held)
    assert pool.acquire("b") == "sandbox-0"


def test_waiting_tenants_take_turns_not_first_come_first_served():
    pool = turns(size=1)
    held = pool.acquire("x")
    order: list[str] = []
    threads = []
    for tenant in ["a", "a", "a", "b"]:  # a's three checks arrive before b's one
        threads.append(waiting_thread(pool, tenant, order))
        wait_until_waiting(pool, len(threads))
    pool.release("x", held)
    for thread in threads:
        thread.join()
    assert order == ["a", "b", "a", "a"]
