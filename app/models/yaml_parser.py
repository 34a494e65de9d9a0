"""YAML model bodies parsed in a child process of their own, never in the API process.

PyYAML builds Python objects under the GIL: in the API process four 1 MiB bodies parsing in threads took the
event loop's share of the CPU and raised another client's GET /v1/models p50 from 7 ms to 590 ms. Here one child
process (niced, so the API's requests come first on a shared CPU) parses with libyaml (3.5x PyYAML's pure-Python
parser on a 600 KB Keras config: 0.76 s against 2.7 s) one document at a time; a body waits for it at most
KERASD_SPEC_CHECKER_TIMEOUT_S, then is a 503 with Retry-After. A document whose objects or lists are reached
through YAML aliases is refused (a few hundred bytes of aliases can stand for billions of nodes). The child ends
soon after the API process, however that ended (tests/test_yaml_child_process.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import yaml

from app.core.errors import Problem

_lock = threading.Lock()
_executor: concurrent.futures.ProcessPoolExecutor | None = None
# Bodies waiting for the child at most, beyond the one it parses: one more is a 503 at once.
MAX_WAITING = 8
_waiting = 0
# How often the child looks whether its API process is still its parent.
PARENT_CHECK_S = 0.5


def _start_child(parent: int) -> None:
    """The child's initializer: niced, and watching for the end of `parent`, the API process that started it."""
    os.nice(10)
    threading.Thread(target=_exit_without, args=(parent,), name="yaml-exit-without-parent", daemon=True).start()


def _exit_without(parent: int) -> None:
    # The child never sees EOF when the API process is gone: it holds the call queue pipe's write end itself (both
    # ends are pickled to it). An API killed with SIGKILL (or by the OOM killer) left it blocked in read() for good,
    # reparented to pid 1 with its resource tracker beside it, one pair per kill. Its parent's pid changes when the
    # parent ends, however that was: then it ends (the tracker follows, its pipe's last writer gone); measured after
    # a SIGKILL of the API, both were gone within 0.3 to 0.4 s.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def shared_container(document: Any) -> bool:
    """True when an object or list is reached twice (a YAML alias): walking such a document can be exponential."""
    seen: set[int] = set()
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict | list):
            if id(value) in seen:
                return True
            seen.add(id(value))
            stack.extend(value.values() if isinstance(value, dict) else value)
    return False


def parse(text: str) -> tuple[bool, Any]:
    """(True, document) or (False, what is wrong); run in the child, and by load_yaml in-process."""
    try:
        document = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        return False, (f"the YAML cannot be read as plain data ({str(exc).splitlines()[0]}); send what "
                       "GET /v1/models/{id}/architecture?format=yaml returns")
    except RecursionError:
        return False, "the YAML nests too deeply"
    if shared_container(document):
        return False, "the YAML uses aliases (*name) for objects or lists; write each layer out in full"
    return True, document


def _pool() -> concurrent.futures.ProcessPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            # spawn: the API process has threads and an event loop that a fork would copy in an unknown state.
            _executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_child,
                initargs=(os.getpid(),))
        return _executor


def _reset(broken: concurrent.futures.ProcessPoolExecutor) -> None:
    global _executor
    with _lock:
        if _executor is broken:
            _executor = None
    broken.shutdown(wait=False, cancel_futures=True)


def _busy(detail: str) -> Problem:
    return Problem(503, "Service Unavailable", f"{detail}; retry after 5 s.", headers={"Retry-After": "5"},
                   retry_after_s=5)


async def parse_isolated(text: str, timeout_s: float) -> tuple[bool, Any]:
    """`parse(text)` in the child process, waited for on the event loop."""
    global _waiting
    if _waiting > MAX_WAITING:
        raise _busy(f"{MAX_WAITING} YAML documents are already waiting to be read on this API process")
    pool = _pool()
    _waiting += 1
    try:
        future = pool.submit(parse, text)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout=timeout_s)
    except TimeoutError:
        raise _busy(f"the YAML could not be read within {timeout_s:g} s (KERASD_SPEC_CHECKER_TIMEOUT_S)") from None
    except BrokenProcessPool:
        _reset(pool)
        raise _busy("the process that reads YAML stopped (too large a document?)") from None
    finally:
        _waiting -= 1


def close() -> None:
    """The child killed and waited for: what it was reading is no longer wanted."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    # shutdown(wait=False) alone left the child behind after a graceful SIGTERM: in 3 runs of 9 with the child idle,
    # and always with a document still unread. uvicorn re-raises the signal once the lifespan has ended, and this
    # process died of it before the executor's thread had sent the child its sentinel, or while that thread still
    # waited for the parse to end (it sends none before). SIGKILL, not SIGTERM: a child held stopped would keep a
    # SIGTERM pending, and the join below with it. (Python 3.14's kill_workers() does this loop.)
    processes = list((executor._processes or {}).values())
    for process in processes:
        process.kill()
    executor.shutdown(wait=True, cancel_futures=True)
