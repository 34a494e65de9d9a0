"""What the sync and async clients share: requests described as data, and operations written once.

An operation is a generator that yields `Call`s (one HTTP request each) or `Sleep`s and receives the
response (or has the API error thrown in); `Client` drives it with blocking httpx calls, `AsyncClient`
with awaited ones. So every resource method exists once and behaves the same in both clients.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx
import tenacity

from kerasd import __version__
from kerasd.errors import APIConnectionError, APIError, RateLimited, error_class
from kerasd.events import EventStream
from kerasd.progress import TransferBar

log = logging.getLogger("kerasd")

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


def api_error(response: httpx.Response, hint: str = "") -> APIError:
    problem = problem_of(response)
    cls = error_class(response.status_code)
    request = response.request
    if cls is RateLimited:
        return RateLimited(response.status_code, problem, retry_after=retry_after_of(response),
                           method=request.method, url=str(request.url), hint=hint)
    return cls(response.status_code, problem, method=request.method, url=str(request.url), hint=hint)


def reconnect_delay(retry_ms: int | None, failures: int) -> float:
    """Seconds before reconnecting a job's event stream: the server's `retry:` hint, doubled per failure."""
    base = (retry_ms / 1000) if retry_ms is not None else 1.0
    return min(base * (2 ** max(0, failures - 1)), 10.0) if failures else min(base, 2.0)


class StreamEnded(Exception):
    """The server closed a job's event stream before the job ended (a connection's lifetime cap): reconnect."""


# What breaks a job's event stream and is worth reconnecting for: the network, or a server that is away.
STREAM_BREAKS = (httpx.TransportError, APIConnectionError)


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
        # Where the URL came from, for the messages that say it cannot be reached (the CLI says `--url`).
        self.url_source = ("Client(base_url=...)" if base_url else
                           "KERASD_URL" if os.environ.get("KERASD_URL") else "the default")
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

    # --- retries and reconnects (tenacity), the same for both clients ------------------------------------

    def _refused(self, call: Call, response: httpx.Response) -> bool:
        """A 429 or 503 answer to a method that changes nothing when repeated: worth sending again."""
        return call.method in IDEMPOTENT and response.status_code in (429, 503) and self.max_retries > 0

    def _retrying(self) -> dict[str, Any]:
        """`tenacity.Retrying` / `AsyncRetrying` arguments for a refused request, whose first attempt is the answer
        already received (a request that succeeds never enters tenacity: bench/sdk_libraries.py): sent again
        after the server's Retry-After (else a doubling delay) while it is refused, at most `max_retries` times;
        the last answer is handed back either way."""

        def delay(state: tenacity.RetryCallState) -> float:
            response = state.outcome.result()
            return min(retry_after_of(response) or 0.5 * 2 ** (state.attempt_number - 1), 30.0)

        return {"retry": tenacity.retry_if_result(lambda response: response.status_code in (429, 503)),
                "stop": tenacity.stop_after_attempt(self.max_retries + 1), "wait": delay,
                "retry_error_callback": lambda state: state.outcome.result()}

    def _reconnecting(self, stream: EventStream, *, reconnect: bool, max_reconnects: int,
                      notify: Callable[[str], None] | None) -> dict[str, Any]:
        """tenacity arguments for following a job's events: a stream the server closed early is opened again at
        once; one that broke (the network, a server restarting) is reopened after the server's `retry:` hint,
        doubled per failure, up to `max_reconnects` failures in a row; a failure is said, never silent."""
        say = notify or log.warning

        def broke(state: tenacity.RetryCallState) -> bool:
            return isinstance(state.outcome.exception(), STREAM_BREAKS)

        def failures(state: tenacity.RetryCallState) -> int:
            return state.attempt_number - stream.progress_at if broke(state) else 0

        def retry(state: tenacity.RetryCallState) -> bool:
            if isinstance(state.outcome.exception(), StreamEnded):
                stream.progress_at = state.attempt_number
                return True
            return reconnect and broke(state)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if broke(state):
                count = failures(state)
                delay = reconnect_delay(stream.retry_ms, count)
                say(f"kerasd: lost the connection to {self.base_url} while following job {stream.job_id} "
                    f"({_reason(state.outcome.exception())}); reconnecting in {delay:.0f} s "
                    f"(try {count} of {max_reconnects}). The job goes on on the server: "
                    f"`kerasd jobs watch {stream.job_id}` follows it from anywhere.")

        return {"retry": retry, "reraise": True, "before_sleep": before_sleep,
                "stop": lambda state: failures(state) > max_reconnects,
                "wait": lambda state: reconnect_delay(stream.retry_ms, failures(state))}

    # --- errors that say what to do ----------------------------------------------------------------------

    def _connection_error(self, method: str, url: str, exc: Exception) -> APIConnectionError:
        if isinstance(exc, APIConnectionError):
            return exc
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
            return APIConnectionError(
                f"cannot reach the kerasd API at {self.base_url} (tried {method} {url}; the URL comes from "
                f"{self.url_source}): {_reason(exc)}. Is a kerasd server running there? Start one on this machine "
                "with `kerasd up`, or point KERASD_URL (the CLI's --url) at the server.")
        return APIConnectionError(f"{method} {url}: the connection to the kerasd API at {self.base_url} failed: "
                                  f"{_reason(exc)}")

    def _stream_broken(self, stream: EventStream, exc: BaseException) -> APIConnectionError:
        return APIConnectionError(f"the event stream of job {stream.job_id} from {self.base_url} broke and was not "
                                  f"resumed ({_reason(exc)}). The job goes on on the server: "
                                  f"`kerasd jobs watch {stream.job_id}` follows it again.")

    def _api_error(self, response: httpx.Response) -> APIError:
        hint = ""
        if response.status_code == 404 and problem_of(response).get("detail") in (None, "", "Not Found"):
            # No route answered: the URL is not the kerasd API's (a `/v1` too many, another service).
            request = response.request
            hint = (f"{request.method} {request.url} is not a kerasd route. The base URL is {self.base_url} "
                    f"(from {self.url_source})")
            hint += (": give the server's root, without the trailing /v1 (the SDK adds /v1 to each route)."
                     if self.base_url.endswith("/v1") else ": is it the root URL of a kerasd server?")
        return api_error(response, hint)

    def _answer(self, call: Call, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400 or response.status_code in call.allow:
            return response
        raise self._api_error(response)

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


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, APIConnectionError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
