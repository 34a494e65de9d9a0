"""Waiting for an observable state with a deadline, instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout_s: float = 120, what: str = "condition", every_s: float = 0.1) -> T:
    """`check()`'s first truthy value; an AssertionError naming `what` if none comes within `timeout_s`.

    The deadline is generous on purpose: it bounds a broken run, it is not a measurement."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(every_s)
