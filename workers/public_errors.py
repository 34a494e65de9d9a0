"""A failed job's error message as its owner reads it: no Python traceback, no path on the worker's disk.

TensorFlow writes into its exception messages the stack of the op that failed ("defined at (most recent call
last): File "/usr/lib/python3/.../keras/src/...", line 60") and Keras the paths it read; both tell a stranger
how the server is laid out and nothing the owner can act on. The worker's log keeps the full traceback.
"""

from __future__ import annotations

import re
import traceback

# A traceback's frame line ('  File "/x/y.py", line 3, in f') and the source line under it.
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+(, in .*)?$')
_HEADER = re.compile(r"(Traceback|defined at) \(most recent call last\):?\s*$")
# An absolute path on the server, at least two components deep: only its last component stays. API paths in
# our own messages (/v1/jobs/{id}) are kept.
_PATH = re.compile(r"(?<![\w.~:/])/(?!v1/)(?:[\w.+@-]+/)+([\w.+@-]+)")


def public_message(text: str) -> str:
    lines: list[str] = []
    skip_source = False
    for line in text.strip().splitlines():
        if _HEADER.search(line):
            kept = _HEADER.sub("", line).rstrip()
            if kept:
                lines.append(kept)
            continue
        if _FRAME.match(line):
            skip_source = True  # the next line, when indented, is the frame's source
            continue
        if skip_source and line.startswith("    "):
            skip_source = False
            continue
        skip_source = False
        lines.append(line)
    cleaned = "\n".join(lines)
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned)
    return _PATH.sub(r"\1", cleaned).strip()


RESOURCE_EXHAUSTED_MARKERS = ("ResourceExhaustedError", "RESOURCE_EXHAUSTED", "OOM when allocating", "out of memory")


def error_of(exc: BaseException) -> dict[str, str]:
    """What a user reads when the job fails: Keras's own exception type and message, without the tracebacks and
    server paths TensorFlow writes into its messages (the worker's log keeps the whole traceback); running out
    of GPU or host memory is named as such, since the answer is a smaller batch or model, not a code fix."""
    message = public_message(str(exc) or traceback.format_exception_only(type(exc), exc)[-1])
    if isinstance(exc, MemoryError) or any(m in type(exc).__name__ or m in message for m in RESOURCE_EXHAUSTED_MARKERS):
        return {
            "type": "resource_exhausted",
            "message": f"the job ran out of memory ({type(exc).__name__}): {message[:3000]} -- use a smaller "
            "batch_size or model, or a worker with more memory",
        }
    return {"type": type(exc).__name__, "message": message[:4000]}
