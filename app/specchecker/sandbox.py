"""A spec checker sandbox: `python -m app.specchecker.sandbox MEMORY_MB`, Keras imported once, answering over its pipes.

Run only as that child process (and by the tests' probe): the API process starts it by module name and never
imports this module, so TensorFlow never enters the API (DESIGN.md §2).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from app.specchecker.protocol import read_message, write_message

# Errors after which a sandbox is not trusted with the next request: it exits, and a fresh one starts.
EXHAUSTION_ERRORS = frozenset({"MemoryError", "ResourceExhaustedError", "RecursionError"})


def sandbox_main(memory_mb: int) -> None:
    """The sandbox process: `python -m app.specchecker.sandbox MEMORY_MB`, length-prefixed JSON on stdin/stdout."""
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
    write_message(protocol_out, {"ready": True})
    while True:
        try:
            operation, args = read_message(protocol_in)
        except EOFError:
            return
        try:
            reply = {"ok": operations[operation](*args)}
        except BaseException as exc:  # Keras's own error is the user's answer
            name = type(exc).__name__
            if name in EXHAUSTION_ERRORS:
                write_message(protocol_out, {"error": ["MemoryError", "building the model needs more memory "
                                                        f"than the spec checker's {memory_mb} MiB ({name})"],
                                              "retire": True})
                return  # a process that ran out of memory is not trusted with the next spec
            if not isinstance(exc, Exception):
                raise
            reply = {"error": [name, str(exc)[:4000]], "detail": getattr(exc, "detail", None)}
        write_message(protocol_out, reply)


def sandbox_operations() -> dict[str, Any]:
    """What a sandbox answers; imported only in sandboxes (and the tests' probe), never in the API."""
    from app.specchecker import building, model_check, model_files

    return {
        "check_model": model_check.check_model,
        "check_model_file": model_files.check_model_file,
        "check_compile": building.check_compile,
        "catalog": building.catalog_lists,
        "versions": building.versions,
    }


if __name__ == "__main__":
    sandbox_main(int(sys.argv[1]))
