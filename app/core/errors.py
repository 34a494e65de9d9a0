"""The one exception type of the server: its status, what was wrong and what to do (DESIGN.md §12)."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class Problem(Exception):
    """Raise from any route, service or repository; app/http/problems.py turns it into a problem document."""

    def __init__(self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def not_found(kind: str, ident: str) -> Problem:
    return Problem(404, "Not Found", f"No {kind} with id {ident!r}. List them with GET /v1/{kind}s.")


def found(row: T | None, kind: str, ident: str) -> T:
    """The row a repository found for its tenant, or the 404 that names what was asked for."""
    if row is None:
        raise not_found(kind, ident)
    return row
