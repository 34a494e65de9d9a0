"""The spec checker's protocol: length-prefixed JSON messages over the sandbox's pipes, never pickle, and its errors."""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO


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


def read_message(stream: BinaryIO) -> dict[str, Any]:
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError
    return json.loads(stream.read(struct.unpack(">I", header)[0]))


def write_message(stream: BinaryIO, message: Any) -> None:
    body = json.dumps(message, default=str).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()
