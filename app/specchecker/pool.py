"""The spec checker (DESIGN.md §2): a pool of sandboxed processes that build Keras models from specs.

The API process never imports TensorFlow. Each sandbox is a child process (`python -m app.specchecker.sandbox`)
with TensorFlow imported once, an address-space limit (RLIMIT_AS) and no GPU; a request that runs past
the timeout, or a spec that crashes or exhausts its sandbox, kills only that sandbox: the caller gets
CheckerFailed (a 422) and a fresh sandbox takes its place. Messages cross the pipes as JSON, never
pickle, so even a subverted sandbox cannot run code in the API.
"""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import threading
from typing import Any

from app.specchecker.protocol import CheckerFailed, CheckerRejected, read_message, write_message
from app.specchecker.turns import CheckerBusy, Turns

__all__ = ["CheckerBusy", "CheckerFailed", "CheckerRejected", "SpecChecker"]

log = logging.getLogger("kerasd.spec_checker")

READY_TIMEOUT_S = 180.0


class _Sandbox:
    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.specchecker.sandbox", str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
        )
        self.ready = False

    def _receive(self, timeout: float) -> dict[str, Any]:
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            raise CheckerFailed(f"the spec checker did not answer within {timeout:.0f} s")
        try:
            return read_message(self.process.stdout)
        except (EOFError, OSError, ValueError):
            raise CheckerFailed("the spec checker process died while building the model") from None

    def wait_ready(self) -> None:
        if not self.ready:
            self._receive(READY_TIMEOUT_S)
            self.ready = True

    def request(self, operation: str, args: list[Any], timeout: float) -> Any:
        self.wait_ready()
        try:
            write_message(self.process.stdin, [operation, args])
        except (BrokenPipeError, OSError):
            raise CheckerFailed("the spec checker process is gone") from None
        reply = self._receive(timeout)
        if reply.get("retire"):
            # The sandbox exits after this answer: replace it rather than hand it the next request.
            raise CheckerFailed(reply["error"][1])
        if "error" in reply:
            raise CheckerRejected(*reply["error"], reply.get("detail"))
        return reply["ok"]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class SpecChecker:
    def __init__(self, *, processes: int, memory_mb: int, timeout_s: float, per_tenant: int = 4,
                 max_waiting: int = 16, wait_s: float = 30.0) -> None:
        self._memory_mb = memory_mb
        self._timeout_s = timeout_s
        self._turns: Turns[_Sandbox] = Turns(size=processes, per_tenant=per_tenant, max_waiting=max_waiting,
                                             wait_s=wait_s)
        self._all: list[_Sandbox] = []
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        for _ in range(processes):
            self._add()

    def _add(self) -> None:
        sandbox = _Sandbox(self._memory_mb)
        with self._lock:
            self._all.append(sandbox)
        self._turns.add(sandbox)

    def _discard(self, sandbox: _Sandbox) -> None:
        sandbox.kill()
        with self._lock:
            if sandbox in self._all:
                self._all.remove(sandbox)

    def call(self, operation: str, *args: Any, tenant: str | None = None) -> Any:
        """One request to a sandbox, taking turns with other tenants (app/specchecker/turns.py); CheckerBusy when
        the tenant's cap or the checker's queue is full, or no sandbox came free in time."""
        sandbox = self._turns.acquire(tenant)
        kept: _Sandbox | None = None  # kept for the next check only when it answered, alive
        try:
            result = sandbox.request(operation, list(args), self._timeout_s)
            kept = sandbox
            return result
        except CheckerRejected:
            if sandbox.alive():
                kept = sandbox
            raise
        finally:
            if kept is None:
                self._discard(sandbox)
            self._turns.release(tenant, kept)
            if kept is None:
                self._add()

    def cached(self, operation: str) -> Any:
        """For answers that depend only on the installed Keras (catalog, versions)."""
        if operation not in self._cache:
            self._cache[operation] = self.call(operation)
        return self._cache[operation]

    def warm(self) -> None:
        """Import TensorFlow in the sandboxes now rather than on the first user request."""
        try:
            self.cached("catalog")
        except Exception:  # best effort: the first request tries again
            log.exception("spec checker failed to warm up")

    def close(self) -> None:
        with self._lock:
            sandboxes, self._all = self._all, []
        for sandbox in sandboxes:
            sandbox.kill()


