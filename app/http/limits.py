"""Limits on every request, before a route sees it: body size, and the shape of JSON bodies.

An ASGI middleware, so it covers every route, including those that read the body themselves:
- a body larger than its limit is a 413 (uploads: KERASD_MAX_UPLOAD_BYTES; anything else:
  KERASD_MAX_REQUEST_BYTES), whether it says so in Content-Length or turns out larger while streaming;
- a JSON body nested deeper than KERASD_MAX_JSON_DEPTH, with an array or object of more than
  KERASD_MAX_JSON_ITEMS entries, a string longer than KERASD_MAX_JSON_STRING_CHARS, or a NUL character
  in a string (no database column takes one) is a 422 that names where;
- a query string longer than MAX_QUERY_CHARS is a 414 (LONG_QUERIES: longer on the routes that name many
  ids in it);
- a body that arrives slower than KERASD_MIN_BODY_BYTES_PER_S (after KERASD_BODY_GRACE_S) or pauses longer than
  KERASD_BODY_IDLE_TIMEOUT_S is a 408 (app/http/admission.py).

A JSON body larger than INLINE_JSON_BYTES is parsed and walked in a worker thread, not on the event loop: a
16 MB document takes the loop ~0.3 s to parse and walk, during which no other request is answered.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from app.core.settings import Settings, get_settings
from app.http.admission import BodyTimeout, deadline_receive
from app.http.asgi import HTTPMiddleware
from app.http.problems import problem_response

MAX_QUERY_CHARS = 8192
# GET /v1/jobs/compare names up to 500 job ids: 500 x 32 characters, with commas sent as %2C.
LONG_QUERIES = {"/v1/jobs/compare": 20_480}
# A multipart form carries its boundaries and field headers besides the file.
MULTIPART_OVERHEAD = 64 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies up to this size are checked on the event loop (a thread hop costs more than parsing them).
INLINE_JSON_BYTES = 64 * 1024
SURROGATE = re.compile("[\ud800-\udfff]")


class BodyTooLarge(StarletteHTTPException):
    """Raised while a route reads a body past its limit. An HTTPException, because FastAPI re-raises those
    from its body parsing untouched, so the problem handlers answer it."""

    title = "Content Too Large"

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail=detail)


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media in ("", "application/json") or media.endswith("+json")


def body_limit(media: str, settings: Settings) -> tuple[int, str]:
    if media == "multipart/form-data":
        return settings.max_upload_bytes + MULTIPART_OVERHEAD, (
            "KERASD_MAX_UPLOAD_BYTES; split the arrays into several datasets")
    return settings.max_request_bytes, ("KERASD_MAX_REQUEST_BYTES; send large files as multipart uploads, "
                                        "and arrays as datasets, not inline")


def _too_large_detail(size: int, limit: int, hint: str) -> str:
    return f"The request body is {size:,} bytes or more; the limit is {limit:,} bytes ({hint})."


def json_shape_error(document: Any, settings: Settings) -> str | None:
    """What is wrong with a parsed JSON document's shape, or None. Iterative: depth cannot hurt it."""
    stack: list[tuple[Any, str, int]] = [(document, "$", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > settings.max_json_depth:
                return (f"{path} is nested {depth} levels deep; the limit is {settings.max_json_depth} "
                        "(KERASD_MAX_JSON_DEPTH)")
            if len(value) > settings.max_json_items:
                kind = "object has" if isinstance(value, dict) else "array has"
                return (f"the {kind} {len(value):,} entries at {path}; the limit is {settings.max_json_items:,} "
                        "(KERASD_MAX_JSON_ITEMS): large arrays go in datasets (POST /v1/datasets)")
            if isinstance(value, dict):
                for key, item in value.items():
                    problem = _string_error(key, f"{path} (a key)", settings)
                    if problem:
                        return problem
                    stack.append((item, f"{path}.{key[:50]}", depth + 1))
            else:
                stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            problem = _string_error(value, path, settings)
            if problem:
                return problem
    return None


def _string_error(text: str, path: str, settings: Settings) -> str | None:
    if len(text) > settings.max_json_string_chars:
        return (f"the string at {path} has {len(text):,} characters; the limit is "
                f"{settings.max_json_string_chars:,} (KERASD_MAX_JSON_STRING_CHARS); send YAML as the body "
                "(Content-Type: application/yaml), not inside JSON")
    if "\x00" in text:
        return f"the string at {path} holds a NUL character (\\u0000), which cannot be stored; remove it"
    if SURROGATE.search(text):
        return (f"the string at {path} holds a lone UTF-16 surrogate (\\ud800 to \\udfff), which is not a "
                "character and cannot be stored; send the character itself, or both halves of its pair")
    return None


def json_body_error(body: bytes, settings: Settings) -> str | None:
    """What is wrong with a JSON body's shape, or None (also for a body that is not JSON at all: the route says
    so in its own words)."""
    try:
        return json_shape_error(json.loads(body), settings)
    except RecursionError:
        return (f"the JSON is nested too deeply to read; the limit is {settings.max_json_depth} levels "
                "(KERASD_MAX_JSON_DEPTH)")
    except ValueError:
        return None


class RequestLimits(HTTPMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = get_settings()
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        query_limit = LONG_QUERIES.get(path, MAX_QUERY_CHARS)
        if len(scope.get("query_string", b"")) > query_limit:
            await problem_response(414, "URI Too Long", f"The query string is longer than {query_limit} "
                                   "characters; send less in it.", path)(scope, receive, send)
            return
        media = _media_type(headers)
        limit, hint = body_limit(media, settings)
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            await problem_response(400, "Bad Request", "Content-Length is not a number.", path)(scope, receive, send)
            return
        if declared > limit:
            await problem_response(413, "Content Too Large", _too_large_detail(declared, limit, hint),
                                   path, headers={"Connection": "close"})(scope, receive, send)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        receive = deadline_receive(receive, settings)
        if is_json(media):
            await self._json(scope, receive, send, settings, limit, hint)
            return
        await self.app(scope, self._counting(receive, limit, hint), send)

    @staticmethod
    def _counting(receive: Receive, limit: int, hint: str) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_too_large_detail(received, limit, hint))
            return message

        return counted

    async def _json(self, scope: Scope, receive: Receive, send: Send, settings: Settings, limit: int,
                    hint: str) -> None:
        """Read the whole (bounded) body, check its shape, then hand the same bytes to the app."""
        chunks, size = [], 0
        while True:
            try:
                message = await receive()
            except BodyTimeout as exc:
                await problem_response(408, exc.title, exc.detail, scope.get("path", ""),
                                       headers=exc.headers)(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await problem_response(413, "Content Too Large", _too_large_detail(size, limit, hint),
                                       scope.get("path", ""), headers={"Connection": "close"})(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = None
        if len(body) > INLINE_JSON_BYTES:
            problem = await anyio.to_thread.run_sync(json_body_error, body, settings)
        elif body:
            problem = json_body_error(body, settings)
        if problem:
            await problem_response(422, "Unprocessable Content", f"The JSON body is refused: {problem}.",
                                   scope.get("path", ""))(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
