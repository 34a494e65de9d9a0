"""Waiting for an observable state with a deadline, instead of sleeping for a guessed time; holding a worker
still (SIGSTOP) while a test reads what it has done so far; keeping a worker busy with a job until cancelled."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from tests.seed import fit_request, submit

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout_s: float = 120, what: str = "condition", every_s: float = 0.1) -> T:
    """`check()`'s first truthy value; an AssertionError naming `what` if none comes within `timeout_s`.

    The deadline is generous on purpose: it bounds a broken run, it is not a measurement."""
    return step_until(time.sleep, check, timeout_s, slice_s=every_s, what=what)


@contextmanager
def paused(pid: int) -> Iterator[Callable[[float], None]]:
    """The process group led by `pid` (a worker started in a session of its own) stopped with SIGSTOP, so the
    state it leaves can be read while it cannot move; continued on leaving. Yields `run_for(seconds)`, which lets
    the group run for a slice and stops it again."""

    def run_for(seconds: float) -> None:
        os.killpg(pid, signal.SIGCONT)
        time.sleep(seconds)
        os.killpg(pid, signal.SIGSTOP)

    os.killpg(pid, signal.SIGSTOP)
    try:
        yield run_for
    finally:
        os.killpg(pid, signal.SIGCONT)


def step_until(
    run_for: Callable[[float], None],
    check: Callable[[], T],
    timeout_s: float = 120,
    slice_s: float = 0.02,
    what: str = "condition",
) -> T:
    """With a process group `paused`, let it run in slices until `check()` holds between two slices (read while
    it is stopped, so what `check` saw still holds when this returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        run_for(slice_s)


def running_until_cancelled(client: httpx.Client, model_id: str, dataset_id: str, **fit: Any) -> str:
    """The id of a job that trains until it is cancelled, once a worker runs it: that worker (one job at a time)
    takes nothing else meanwhile, so what waits behind the job does not depend on how fast the machine trains."""
    request = fit_request(model_id, dataset_id, **{"epochs": 100_000, "batch_size": 20, **fit}) | {"tuning": False}
    job_id = submit(client, request)
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", what=f"job {job_id} running")
    return job_id
