"""Reads a multipart upload as it arrives: the small form fields into memory, the file's bytes to a writer.

Starlette's `request.form()` spools the whole file to a temporary file first (one thread hop per 64 KiB
written), and the file was then read twice more (hash, store): a third of the upload's time went to that
(README, Performance). Here the body is parsed as it streams in (python-multipart's parser, the one Starlette
uses) and the file's bytes are cut into storage chunks and handed to a `ChunkSink` as they come.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.core.errors import Problem

MAX_FIELD_CHARS = 100_000


class ChunkSink(Protocol):
    """Where the file's bytes go (app/datasets/uploads.py's DatasetUpload spools them)."""

    def put_nowait(self, block: bytes | bytearray) -> bool: ...

    def put(self, block: bytes | bytearray) -> None: ...

    def check(self) -> None:
        """Raise what refuses the file, once the bytes so far have shown it (the receiving stops there)."""


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    file_bytes: int = 0


class _Parts:
    """python-multipart's callbacks: which part is being read, its headers, and where its bytes go."""

    def __init__(self, open_file: Callable[[str, dict[str, str]], ChunkSink], chunk_bytes: int, max_file_bytes: int,
                 too_large: Callable[[int], Problem]) -> None:
        self.open_file, self.chunk_bytes = open_file, chunk_bytes
        self.max_file_bytes, self.too_large = max_file_bytes, too_large
        self.form = ReceivedForm()
        self.writer: ChunkSink | None = None
        self.ready: list[bytearray] = []  # whole chunks for the writer, handed over between parser writes
        self._block = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_field = self._header_value = b""
        self._target: str | None = None  # "file", a field's name, or None (an ignored part)
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable]:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end}

    def _part_begin(self) -> None:
        self._headers, self._target, self._value = {}, None, bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file" and b"filename" in options:
            if self.writer is not None:
                raise Problem(422, "Invalid Form", "The form has more than one `file` part; upload one file per "
                              "dataset.", field="file")
            self.form.filename = options[b"filename"].decode("utf-8", "replace")
            self.writer = self.open_file(self.form.filename, self.form.fields)
            self._target = "file"
        elif b"filename" not in options and name:
            self._target = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "file":
            self.form.file_bytes += end - start
            if self.form.file_bytes > self.max_file_bytes:
                raise self.too_large(self.form.file_bytes)
            self._block += memoryview(data)[start:end]
            while len(self._block) >= self.chunk_bytes:
                self.ready.append(self._block[:self.chunk_bytes])
                del self._block[:self.chunk_bytes]
        elif self._target is not None:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_CHARS * 4:
                raise Problem(422, "Invalid Form", f"The form field {self._target!r} is longer than "
                              f"{MAX_FIELD_CHARS:,} characters.", field=self._target)

    def _part_end(self) -> None:
        if self._target == "file":
            if self._block:
                self.ready.append(self._block)
            self._block = bytearray()
        elif self._target is not None:
            self.form.fields[self._target] = self._value.decode("utf-8", "replace")
        self._target = None


async def _hand_over(parts: _Parts) -> None:
    if parts.writer is None:
        return
    # After every message: a file refused from its first chunk is answered then, and the rest of its body is left
    # unparsed (the server drops it unread).
    parts.writer.check()
    while parts.ready:
        block = parts.ready.pop(0)
        # The writer's queue is full: wait for it in a thread, not on the event loop.
        if not parts.writer.put_nowait(block):
            await run_in_threadpool(parts.writer.put, block)


async def receive_multipart(request: Request, *, open_file: Callable[[str, dict[str, str]], ChunkSink],
                            chunk_bytes: int, max_file_bytes: int,
                            too_large: Callable[[int], Problem]) -> ReceivedForm:
    """The form's fields; every byte of its `file` part has gone to the writer `open_file(filename, fields)` made
    (`fields`: those sent before the file; not yet closed). Should this raise, the caller aborts the writer it made."""
    media, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise Problem(415, "Unsupported Media Type", "Upload the file as a multipart form with the file in the "
                      "field 'file' (curl -F file=@train.npz).")
    parts = _Parts(open_file, chunk_bytes, max_file_bytes, too_large)
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        async for message in request.stream():
            parser.write(message)
            await _hand_over(parts)
        parser.finalize()
        await _hand_over(parts)
    except FormParserError as exc:
        raise Problem(422, "Invalid Form", f"The multipart body is malformed: {exc}.") from None
    if parts.writer is None:
        raise Problem(422, "Missing File", "Send the array file in the multipart field 'file' "
                      "(curl -F file=@train.npz).", field="file")
    return parts.form
