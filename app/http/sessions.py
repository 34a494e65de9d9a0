"""A request's database connection goes back to the pool as soon as its route returns.

FastAPI validates a sync route's answer in a worker thread, and closes the request's session (a dependency
with `yield`) only after the answer is sent. Under a burst of requests, routes that have returned would hold
their connections while waiting for a thread, and threads would wait in the pool for those connections: the
API stalls until the pool's timeout. Closing the session when the route returns breaks that cycle; routes
commit before they return and build their answers from loaded rows, so nothing is lost.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session


def release_after(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through __wrapped__
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return endpoint(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.close()

    call.releases_sessions = True  # type: ignore[attr-defined]
    return call


class SessionReleasingRoute(APIRoute):
    """The route class of every router whose sync routes take a request session."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint) and not getattr(endpoint, "releases_sessions", False):
            endpoint = release_after(endpoint)
        super().__init__(path, endpoint, **kwargs)
