"""Every error answered in one shape: application/problem+json (RFC 9457), with a message a user can act on."""

from __future__ import annotations

import copy
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import RedisError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.core.errors import Problem
from app.http.field_names import with_suggestions

log = logging.getLogger("kerasd.api")

PROBLEM_JSON = "application/problem+json"


# The problem document in OpenAPI: what every error answer of every route looks like. One named component,
# which every error response references (app/http/openapi.py moves `$defs` into the document's components).
PROBLEM = "#/components/schemas/Problem"
FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "ProblemFieldError",
    "required": ["field", "in", "message"],
    "description": "One invalid field of the request.",
    "properties": {
        "field": {
            "type": "string",
            "description": "the field's path in its part of the request, dotted (`fit.epochs`)",
        },
        "in": {"type": "string", "description": "where the field is: body, query, path or header"},
        "message": {"type": "string", "description": "what is wrong with it"},
    },
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail"],
    "description": "An error, as RFC 9457 problem details (`application/problem+json`). Some problems carry more "
    "members that name what they are about (`job_id`, `field`, ...).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what was wrong and what to do"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ProblemFieldError"},
            "description": "for invalid fields: each field and its message",
        },
    },
    "additionalProperties": True,
}
PROBLEM_REF: dict[str, Any] = {
    "$ref": PROBLEM,
    "$defs": {"Problem": PROBLEM_SCHEMA, "ProblemFieldError": FIELD_ERROR_SCHEMA},
}
ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "No valid API key",
    403: "The key's role does not allow this",
    408: "The body arrived too slowly (KERASD_MIN_BODY_BYTES_PER_S): send it again",
    404: "No such resource (or not yours)",
    409: "Conflicts with the resource's state, or a quota",
    413: "Body over its size limit, or over the stored-bytes quota",
    414: "Query string too long",
    415: "Unsupported media type",
    422: "Invalid request: the detail and `errors` say what",
    429: "Over the request rate, or a cap on uploads or streams at once: retry after Retry-After seconds",
    503: "A dependency (SQL, Redis, the spec checker) is unavailable: retry",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, each a problem document."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": copy.deepcopy(PROBLEM_REF)}},
        }
        for status in statuses
    }


def problem_response(
    status: int, title: str, detail: str, instance: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _body_annotation(request: Request) -> Any:
    """The type of the route's body (JobCreate, ...), or None for a route that reads its body itself."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return getattr(getattr(body_field, "field_info", None), "annotation", None)


def _field_errors(exc: RequestValidationError, request: Request) -> list[dict[str, Any]]:
    errors = []
    # An unknown key names the closest field the body's model has (`fit.epoch`: did you mean 'epochs'?).
    for err in with_suggestions(list(exc.errors()), _body_annotation(request)):
        # FastAPI prefixes the location with body/query/path; the user wants the field's own path.
        loc = [str(part) for part in err.get("loc", ())]
        errors.append(
            {
                "field": ".".join(loc[1:]) or loc[0] if loc else "",
                "in": loc[0] if loc else "",
                "message": err.get("msg", ""),
            }
        )
    return errors


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app serves at this request's path."""
    allowed = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def unavailable(exc: BaseException, method: str, path: str) -> JSONResponse | None:
    """The 503 for an error that says a dependency is down or full (SQL unreachable, no connection free, Redis
    away), with Retry-After: nothing was changed and the client may retry. None for any other error. For the
    exception handlers and for the middleware that asks SQL before the app's handlers are reached (app/http/auth.py)."""
    if isinstance(exc, PoolTimeoutError):
        # Every database connection stayed busy for the pool's timeout: too many requests at once.
        from app.core.database import get_engine  # here: it imports settings, which the handlers need not

        log.warning("no database connection free on %s %s (%s)", method, path, get_engine().pool.status())
        detail = "The server is too busy to take this request now; nothing was changed. Retry in a few seconds."
    elif isinstance(exc, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError):
        # PostgreSQL restarting or unreachable: nothing is lost, the client should simply try again.
        # The driver's own error (its class and SQLSTATE) says which: connection refused, too many clients, ...
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0]
        log.warning("database unavailable on %s %s: %s %s (SQLSTATE %s): %s", method, path, exc.__class__.__name__,
                    cause.__class__.__name__, getattr(cause, "sqlstate", None), first_line)
        detail = "The database is unavailable right now; nothing was changed. Retry in a few seconds."
    elif isinstance(exc, RedisError):
        log.warning("redis unavailable on %s %s: %s", method, path, exc.__class__.__name__)
        detail = "The event and queue service (Redis) is unavailable right now. Retry in a few seconds."
    else:
        return None
    return problem_response(503, "Service Unavailable", detail, path, headers={"Retry-After": "5"})


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc, request)
        named = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            422, "Unprocessable Content", f"The request is not valid: {named}", request.url.path, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route with this path; every one is allowed.
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; use {' or '.join(allowed)}."
            return problem_response(405, "Method Not Allowed", detail, request.url.path, headers=headers)
        # A 401 keeps its WWW-Authenticate.
        return problem_response(
            exc.status_code, getattr(exc, "title", None) or detail, detail, request.url.path, headers=headers or None
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (a NUL character, a number out of range): the client's input, not a
        # server fault. What the database said stays in the log.
        log.warning(
            "database refused a value on %s %s: %s",
            request.method,
            request.url.path,
            str(exc.orig).splitlines()[0] if exc.orig else exc.__class__.__name__,
        )
        return problem_response(
            422,
            "Unprocessable Content",
            "A value in the request cannot be stored (text with "
            "NUL characters, or a number out of range); remove it and send the request again.",
            request.url.path,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    # The job reads' own connections on the event loop (app/core/read_pool.py) raise psycopg's errors unwrapped.
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(RedisError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        response = unavailable(exc, request.method, request.url.path)
        assert response is not None
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The trace goes to the log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            "Internal Server Error",
            "The server failed to handle this request; it has been logged.",
            request.url.path,
        )
