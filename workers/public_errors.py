"""A failed job's error message as its owner reads it: no Python traceback, no path on the worker's disk.

TensorFlow writes into its exception messages the stack of the op that failed ("defined at (most recent call
last): File "/usr/lib/python3/.../keras/src/...", line 60") and Keras the paths it read; both tell a stranger
how the server is laid out and nothing the owner can act on. The worker's log keeps the full traceback.
"""

from __future__ import annotations

import re

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
