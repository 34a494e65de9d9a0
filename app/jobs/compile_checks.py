"""Compile arguments already checked, so a submission repeating them skips the spec checker's round trip.

`POST /v1/jobs` sends a job's compile arguments to a sandboxed process that builds the optimizer, losses and
metrics with Keras (app/specchecker/pool.py): a pipe round trip and Keras's work, serialized through a small pool
of processes, which bounded submissions per second. Whether arguments pass depends on the arguments alone
(and on the plugins, fixed when the process starts), so arguments that passed once pass again: they are
remembered by their canonical JSON, a bounded number of them. Refusals are not remembered: each gets its full
answer.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from app.models.service import checked
from app.specchecker.pool import SpecChecker

MAX_REMEMBERED = 1024

_passed: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def check_compile(checker: SpecChecker, compile_args: dict[str, Any], *, tenant_id: str) -> None:
    """The allowlist walk and the sandbox's check, or nothing if these very arguments passed before."""
    key = json.dumps(compile_args, sort_keys=True, separators=(",", ":"))
    with _lock:
        if key in _passed:
            _passed.move_to_end(key)
            return
    checked(checker, "check_compile", compile_args, what="compile arguments", tenant_id=tenant_id, at="compile")
    with _lock:
        _passed[key] = None
        while len(_passed) > MAX_REMEMBERED:
            _passed.popitem(last=False)
