"""The spec checker (DESIGN.md §2): a pool of sandboxed processes that build Keras models from specs.

The API process never imports TensorFlow. Each sandbox is a child process (`python -m app.spec_checker`)
with TensorFlow imported once, an address-space limit (RLIMIT_AS) and no GPU; a request that runs past
the timeout, or a spec that crashes or exhausts its sandbox, kills only that sandbox: the caller gets
CheckerFailed (a 422) and a fresh sandbox takes its place. Messages cross the pipes as JSON, never
pickle, so even a subverted sandbox cannot run code in the API.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import struct
import subprocess
import sys
import threading
from typing import Any, BinaryIO

log = logging.getLogger("kerasd.spec_checker")

READY_TIMEOUT_S = 180.0


class CheckerFailed(RuntimeError):
    """The sandbox died or timed out while handling the request (the spec is the likely cause)."""


class CheckerRejected(ValueError):
    """Keras (or the safety walk) refused the spec; `type` and `message` are what it said, `detail` any
    structured facts (the layer that failed, the parameter count)."""

    def __init__(self, type_: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.detail = detail or {}


# Errors after which a sandbox is not trusted with the next request: it exits, and a fresh one starts.
EXHAUSTION_ERRORS = frozenset({"MemoryError", "ResourceExhaustedError", "RecursionError"})


def _read_message(stream: BinaryIO) -> dict[str, Any]:
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError
    return json.loads(stream.read(struct.unpack(">I", header)[0]))


def _write_message(stream: BinaryIO, message: Any) -> None:
    body = json.dumps(message, default=str).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def sandbox_main(memory_mb: int) -> None:
    """The sandbox process: `python -m app.spec_checker MEMORY_MB`, length-prefixed JSON on stdin/stdout."""
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The protocol owns the original stdout; anything Keras prints goes to stderr instead.
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    protocol_in = sys.stdin.buffer

    operations = sandbox_operations()
    _write_message(protocol_out, {"ready": True})
    while True:
        try:
            operation, args = _read_message(protocol_in)
        except EOFError:
            return
        try:
            reply = {"ok": operations[operation](*args)}
        except BaseException as exc:  # Keras's own error is the user's answer
            name = type(exc).__name__
            if name in EXHAUSTION_ERRORS:
                _write_message(protocol_out, {"error": ["MemoryError", "building the model needs more memory "
                                                        f"than the spec checker's {memory_mb} MiB ({name})"],
                                              "retire": True})
                return  # a process that ran out of memory is not trusted with the next spec
            if not isinstance(exc, Exception):
                raise
            reply = {"error": [name, str(exc)[:4000]], "detail": getattr(exc, "detail", None)}
        _write_message(protocol_out, reply)


def sandbox_operations() -> dict[str, Any]:
    """What a sandbox answers; imported only in sandboxes (and the tests' probe), never in the API."""
    from workers import building, model_check, model_files

    return {
        "check_model": model_check.check_model,
        "check_model_file": model_files.check_model_file,
        "check_compile": building.check_compile,
        "catalog": building.catalog_lists,
        "versions": building.versions,
    }


class _Sandbox:
    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.spec_checker", str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
        )
        self.ready = False

    def _receive(self, timeout: float) -> dict[str, Any]:
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            raise CheckerFailed(f"the spec checker did not answer within {timeout:.0f} s")
        try:
            return _read_message(self.process.stdout)
        except (EOFError, OSError, ValueError):
            raise CheckerFailed("the spec checker process died while building the model") from None

    def wait_ready(self) -> None:
        if not self.ready:
            self._receive(READY_TIMEOUT_S)
            self.ready = True

    def request(self, operation: str, args: list[Any], timeout: float) -> Any:
        self.wait_ready()
        try:
            _write_message(self.process.stdin, [operation, args])
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
    def __init__(self, *, processes: int, memory_mb: int, timeout_s: float) -> None:
        self._memory_mb = memory_mb
        self._timeout_s = timeout_s
        self._idle: queue.Queue[_Sandbox] = queue.Queue()
        self._all: list[_Sandbox] = []
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        for _ in range(processes):
            self._add()

    def _add(self) -> None:
        sandbox = _Sandbox(self._memory_mb)
        with self._lock:
            self._all.append(sandbox)
        self._idle.put(sandbox)

    def _replace(self, sandbox: _Sandbox) -> None:
        sandbox.kill()
        with self._lock:
            if sandbox in self._all:
                self._all.remove(sandbox)
        self._add()

    def call(self, operation: str, *args: Any) -> Any:
        sandbox = self._idle.get(timeout=READY_TIMEOUT_S + self._timeout_s)
        try:
            result = sandbox.request(operation, list(args), self._timeout_s)
        except CheckerFailed:
            self._replace(sandbox)
            raise
        except CheckerRejected:
            if sandbox.alive():
                self._idle.put(sandbox)
            else:
                self._replace(sandbox)
            raise
        self._idle.put(sandbox)
        return result

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


if __name__ == "__main__":
    sandbox_main(int(sys.argv[1]))
