"""The outermost middleware: a request id, the latency histogram by route, and one access log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from app.core.logs import request_id_var, tenant_id_var
from app.http.asgi import HTTPMiddleware
from app.system.metrics import REQUEST_SECONDS

log = logging.getLogger("kerasd.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Observability(HTTPMiddleware):
    """Outermost middleware: a request id (the client's X-Request-ID if sane, else a new one) on the response
    and on every log line, the latency histogram by route template, and one access log line per request
    (never with the query string, where an EventSource may carry its key)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        offered = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex
        request_token = request_id_var.set(request_id)
        tenant_token = tenant_id_var.set(None)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # path_format: the template without convertors ("/v1/jobs/{job_id}", not "{job_id:job_id}").
            route = getattr(scope.get("route"), "path_format", None) or "unmatched"
            REQUEST_SECONDS.labels(method=scope["method"], route=route, status=str(status)).observe(elapsed)
            tenant = (scope.get("state") or {}).get("tenant_id")
            log.info(
                "%s %s %s",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "tenant_id": tenant,
                },
            )
            request_id_var.reset(request_token)
            tenant_id_var.reset(tenant_token)
