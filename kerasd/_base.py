"""What the sync and async clients share: requests described as data, and operations written once.

An operation is a generator that yields `Call`s (one HTTP request each) or `Sleep`s and receives the
response (or has the API error thrown in); `Client` drives it with blocking httpx calls, `AsyncClient`
with awaited ones. So every resource method exists once and behaves the same in both clients.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx

from kerasd import __version__
from kerasd.errors import APIError, RateLimited, error_class
from kerasd.progress import TransferBar

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
# Methods that change nothing when repeated: retried on 429 / 503 after the server's Retry-After.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass
class Download:
    """Stream the response body into `target` (with a transfer bar) instead of holding it in memory."""

    target: BinaryIO
    label: str
    verbose: int = 1


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    content: bytes | None = None
    # Statuses handed back to the operation instead of raised.
    allow: tuple[int, ...] = ()
    download: Download | None = None
    timeout: float | None = None
    # Called before each send (a retry re-reads a file from its start).
    rewind: Any = field(default=None, repr=False)


@dataclass
class Sleep:
    seconds: float


Operation = Generator[Call | Sleep, Any, Any]


def problem_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    text = response.text[:1000] if response.content else ""
    return {"status": response.status_code, "title": response.reason_phrase or f"HTTP {response.status_code}",
            "detail": text or response.reason_phrase or f"HTTP {response.status_code}"}


def retry_after_of(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def api_error(response: httpx.Response) -> APIError:
    problem = problem_of(response)
    cls = error_class(response.status_code)
    request = response.request
    if cls is RateLimited:
        return RateLimited(response.status_code, problem, retry_after=retry_after_of(response),
                           method=request.method, url=str(request.url))
    return cls(response.status_code, problem, method=request.method, url=str(request.url))


class ProgressReader:
    """A file httpx reads for a multipart upload; counts what was sent for the transfer bar."""

    def __init__(self, file: BinaryIO, bar: TransferBar) -> None:
        self._file = file
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        if chunk:
            self._bar.advance(len(chunk))
        else:
            self._bar.close()
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self._bar.reset()
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


class BaseClient:
    """Settings both clients share: where the API is, the key, timeouts, retries, verbosity."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, max_retries: int = 2, verbose: int = 1,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = (base_url or os.environ.get("KERASD_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("KERASD_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.verbose = verbose
        self._headers = {"User-Agent": f"kerasd-python/{__version__}", **(headers or {})}
        if self.api_key:
            self._headers["Authorization"] = f"Bearer {self.api_key}"
        # sha256 -> dataset id, for arrays this client has already uploaded or found on the server.
        self._known_datasets: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _retry_delay(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `call`, or None not to retry."""
        if response.status_code not in (429, 503) or attempt >= self.max_retries:
            return None
        if call.method not in IDEMPOTENT:
            return None
        return min(retry_after_of(response) or 0.5 * 2 ** attempt, 30.0)

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.files is not None:
            kwargs["files"] = call.files
        if call.data is not None:
            kwargs["data"] = call.data
        if call.content is not None:
            kwargs["content"] = call.content
        if call.timeout is not None:
            kwargs["timeout"] = call.timeout
        return kwargs
