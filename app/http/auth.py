"""Who is calling: API keys made, stored and checked, and the FastAPI dependency every /v1 route runs.

A key is `kd_<8 hex>_<43 random characters>`: 256 random bits behind a visible prefix. Only its sha256 is
stored (a slow password hash buys nothing for a secret that cannot be guessed), found by the prefix and
compared in constant time. A request names its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.

Without a key, a request is refused unless the API runs `localhost-open` (the embedded default, bound to a
loopback address) and the request itself comes from this machine: then it acts as the tenant 'default'.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.core.database import get_read_sessionmaker, get_session, run_sql
from app.core.errors import Problem
from app.core.quotas import Limits, cached_limits, read_tenant_limits, tenant_limits
from app.core.read_pool import read_pool
from app.core.settings import Settings, get_settings
from app.core.sql import ask
from app.core.tables import DEFAULT_TENANT_ID
from app.http import ratelimit
from app.http.admission import auth_failures
from app.http.asgi import HTTPMiddleware
from app.http.problems import problem_response, unavailable
from app.http.ratelimit import RateLimiter
from app.tenants import repository
from app.tenants.key_cache import KeyCache
from app.tenants.keys import KEY_SHAPE, key_sha256

log = logging.getLogger("kerasd.auth")

# EventSource cannot send headers: the events route alone also takes the key as ?api_key=.
EVENTS_PATH = re.compile(r"^/v1/jobs/[^/]+/events$")
# Where RequireCredentials leaves its KeyLookup for current_caller (the ASGI scope's state).
LOOKUP_STATE = "kerasd.key_lookup"

# Declared so that /docs has an Authorize button and the OpenAPI document names both ways to send a key.
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


class AuthConfigError(RuntimeError):
    """KERASD_AUTH asks for something the bind address does not allow."""


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    role: str
    # None for a keyless request of localhost-open mode.
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_mode(settings: Settings) -> str:
    """'required' or 'localhost-open', from KERASD_AUTH and the address the API binds."""
    loopback = is_loopback(settings.api_host)
    if settings.auth == "localhost-open" and not loopback:
        bound = settings.api_host or "an unknown address"
        raise AuthConfigError(
            f"KERASD_AUTH=localhost-open lets requests without a key in, which is allowed only "
            f"when the API binds a loopback address, and it binds {bound!r}. "
            "Bind 127.0.0.1 (kerasd api --host 127.0.0.1) or set KERASD_AUTH=required and give "
            "clients keys (kerasd admin create-key)."
        )
    if settings.auth:
        return settings.auth
    return "localhost-open" if loopback else "required"


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="kerasd"'})


def _presented_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None, header_key: str | None
) -> str | None:
    if credentials is not None and credentials.credentials:
        return credentials.credentials.strip()
    if header_key:
        return header_key.strip()
    if request.method == "GET" and EVENTS_PATH.match(request.url.path):
        return request.query_params.get("api_key") or None
    return None


def caller_of_key(session: Session, key: str) -> Caller:
    """The caller a key stands for; 401 for a malformed, unknown or revoked key."""
    shape = KEY_SHAPE.match(key)
    row = ask(session, repository.key_by_prefix(prefix=shape.group(1))) if shape else None
    # Compare the hash even for an unknown prefix, so the time taken says nothing about the secret.
    stored = row.key_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(stored, key_sha256(key)) or row is None or row.revoked_at is not None:
        raise _unauthorized(
            "The API key is not valid: it is unknown, malformed or revoked. Ask an administrator "
            "for a new one (kerasd admin create-key TENANT)."
        )
    return Caller(tenant_id=row.tenant_id, role=row.role, key_id=row.id)


def resolve_caller(request: Request, session: Session | None, key: str | None) -> Caller:
    settings = get_settings()
    if key is not None:
        assert session is not None
        return caller_of_key(session, key)
    client = request.client.host if request.client else None
    if auth_mode(settings) == "localhost-open" and is_loopback(client):
        return Caller(tenant_id=DEFAULT_TENANT_ID, role="user")
    raise _unauthorized(
        "This API needs a key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`. An "
        "administrator makes one with `kerasd admin create-key TENANT`."
    )


def _caller_and_limits(key: str) -> tuple[Caller, Limits]:
    """In a worker thread, one session: the key's caller (or a 401) and its tenant's limits. Reads only: on an
    autocommit session, so no BEGIN and ROLLBACK round trips around them."""
    with get_read_sessionmaker()() as session:
        caller = caller_of_key(session, key)
        return caller, tenant_limits(session, caller.tenant_id)


def _limits_of(tenant_id: str) -> Limits:
    with get_read_sessionmaker()() as session:
        return tenant_limits(session, tenant_id)


async def _limits(tenant_id: str) -> Limits:
    """The tenant's limits: cached, else on PostgreSQL from the event loop's read connections (no thread hop:
    every process asks this for every tenant every few seconds), else (SQLite) in a worker thread."""
    limits = cached_limits(tenant_id)
    if limits is not None:
        return limits
    pool = read_pool()
    if pool is None:
        return await run_sql(_limits_of, tenant_id)
    return await read_tenant_limits(pool, tenant_id)


def _key_cache(request: Request) -> KeyCache[Caller]:
    return _cache_of(request.app.state)


def _rate_limiter(request: Request) -> RateLimiter:
    state = request.app.state
    limiter = getattr(state, "rate_limiter", None)
    if limiter is None:
        limiter = state.rate_limiter = RateLimiter(ratelimit.limiter_client(get_settings().redis_url))
    return limiter


@dataclass
class KeyLookup:
    """What a presented key resolved to before the rate limit is taken (app/http/auth.py's two halves)."""

    key: str
    digest: str
    caller: Caller
    limits: Limits
    hit: tuple[Caller, str] | None
    seen: str | None


async def lookup_key(state: object, key: str, client_host: str | None) -> KeyLookup:
    """The caller a presented key stands for: from the key cache, else from SQL in a worker thread. A client
    address whose recent keys failed too often is a 429 before SQL is asked (app/http/admission.py)."""
    cache = _cache_of(state)
    digest = key_sha256(key)
    hit = cache.get(digest)
    seen = cache.generation  # read before SQL is asked: a revocation after it changes the generation
    if hit is not None:
        caller = hit[0]
        return KeyLookup(key, digest, caller, await _limits(caller.tenant_id), hit, seen)
    failures = auth_failures(state)
    if not failures.was_accepted(digest):
        failures.check(client_host)
    try:
        caller, limits = await run_sql(_caller_and_limits, key)
    except Problem as problem:
        if problem.status == 401:
            failures.failed(client_host)
        raise
    failures.accepted(digest)
    return KeyLookup(key, digest, caller, limits, None, seen)


def _cache_of(state: object) -> KeyCache[Caller]:
    cache = getattr(state, "key_cache", None)
    if cache is None:
        cache = state.key_cache = KeyCache(get_settings().api_key_cache_s)  # type: ignore[attr-defined]
    return cache


async def current_caller(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    header_key: str | None = Depends(api_key_header),
) -> Caller:
    """The dependency of every /v1 route: who calls, within their tenant's request rate.

    Async, and without a session of its own: a key found in the key cache (app/tenants/key_cache.py) with its tenant's
    limits cached costs one Redis round trip (rate limit and revocation generation together) and no thread.
    Otherwise SQL is asked in one worker thread, with a session of its own that is closed before the route runs.
    The key was usually looked up already by RequireCredentials, before any body byte was read.
    """
    key = _presented_key(request, credentials, header_key)
    cache = _key_cache(request)
    hit = None
    if key is None:
        caller = resolve_caller(request, None, None)  # keyless: 'default' in localhost-open mode, else a 401
        limits = await _limits(caller.tenant_id)
    else:
        found = request.scope.get("state", {}).get(LOOKUP_STATE)
        if found is None or found.key != key:
            found = await lookup_key(request.app.state, key, request.client.host if request.client else None)
        digest, caller, limits, hit, seen = found.digest, found.caller, found.limits, found.hit, found.seen
    taken = await _rate_limiter(request).take(
        caller.tenant_id, rate_per_s=limits.requests_per_s, burst=limits.request_burst
    )
    if key is not None:
        if hit is not None and (taken.generation is None or taken.generation != hit[1]):
            # A key was revoked since this entry was stored (or Redis cannot say): ask SQL again.
            cache.observe(taken.generation)
            caller, limits = await run_sql(_caller_and_limits, key)
            if taken.generation is not None:
                cache.put(digest, caller, taken.generation)
        elif hit is None:
            if taken.generation is not None and taken.generation == seen:
                cache.put(digest, caller, taken.generation)
            cache.observe(taken.generation)
    request.state.tenant_id = caller.tenant_id  # for the access log
    if not taken.allowed:
        raise ratelimit.too_many(limits.requests_per_s, limits.request_burst, taken.wait_s)
    return caller


async def require_admin(caller: Caller = Depends(current_caller)) -> Caller:
    if not caller.is_admin:
        raise Problem(403, "Forbidden", "This needs an admin key (kerasd admin create-key TENANT --role admin).")
    return caller


def metrics_reader(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    header_key: str | None = Depends(api_key_header),
    session: Session = Depends(get_session),
) -> None:
    """/metrics counts every tenant's jobs: open to this machine in localhost-open mode, else admins only."""
    try:
        caller = resolve_caller(request, session, _presented_key(request, credentials, header_key))
    finally:
        session.rollback()
    if caller.key_id is not None and not caller.is_admin:
        raise Problem(403, "Forbidden", "/metrics covers every tenant: it needs an admin key.")


async def sees_internals(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    header_key: str | None = Depends(api_key_header),
) -> bool:
    """Whether the caller may see what names the servers (workers' host names and pids on /version): an admin key,
    or (localhost-open mode) a request from this machine without a key. Anyone else, a bad key included, is
    answered without them, not refused."""
    key = _presented_key(request, credentials, header_key)
    host = request.client.host if request.client else None
    if key is None:
        return auth_mode(get_settings()) == "localhost-open" and is_loopback(host)
    try:
        return (await lookup_key(request.app.state, key, host)).caller.is_admin
    except Problem:
        return False


def _sends_body(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers


class RequireCredentials(HTTPMiddleware):
    """ASGI middleware, before anything reads a body: a /v1 request with no key where one is needed is a 401
    at once, and a presented key is resolved (key cache, else SQL) before the app sees the request, so neither an
    anonymous client nor one with a bogus key can make the API read, parse or spool a body."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not scope.get("path", "").startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        client = scope.get("client")
        host = client[0] if client else None
        if key is None:
            if not (auth_mode(get_settings()) == "localhost-open" and is_loopback(host)):
                problem = _unauthorized(
                    "This API needs a key: send `Authorization: Bearer <key>` or "
                    "`X-API-Key: <key>`. An administrator makes one with "
                    "`kerasd admin create-key TENANT`."
                )
                await problem_response(401, problem.title, problem.detail, scope["path"], headers=problem.headers)(
                    scope, receive, send
                )
                return
        else:
            try:
                found = await lookup_key(scope["app"].state, key, host)
            except Problem as exc:
                # A bad key: a 401, or a 429 from an address that sent too many.
                problem = problem_response(
                    exc.status, exc.title, exc.detail, scope["path"], headers=exc.headers, **exc.extra
                )
                await self._refuse(problem, scope, receive, send)
                return
            except Exception as exc:
                # SQL down while the key is looked up: a 503 with Retry-After, as the app's handlers answer it (this
                # middleware runs outside them, where it would be a 500).
                response = unavailable(exc, scope.get("method", ""), scope["path"])
                if response is None:
                    raise
                await self._refuse(response, scope, receive, send)
                return
            scope.setdefault("state", {})[LOOKUP_STATE] = found
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        if _sends_body(scope):
            # The body stays unread: closing the connection spares the server draining it (uvicorn would read and
            # drop every byte to keep the connection alive: 16 MB of event-loop callbacks).
            response.headers["Connection"] = "close"
        await response(scope, receive, send)

    @staticmethod
    def _key(scope: Scope) -> str | None:
        """The key as current_caller will read it: the Authorization header's (Bearer) credentials, else
        X-API-Key, else (the events route) ?api_key=."""
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        if headers.get("x-api-key"):
            return headers["x-api-key"].strip()
        if scope.get("method") == "GET" and EVENTS_PATH.match(scope.get("path", "")):
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
            return values[0] if values and values[0] else None
        return None
