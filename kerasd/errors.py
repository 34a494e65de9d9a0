"""The exceptions the SDK raises.

Every error answer of the API is an `application/problem+json` document (RFC 9457); the SDK turns it into
the exception of its status, carrying the document whole::

    KerasdError
    ├── APIConnectionError        the server could not be reached, or the connection broke for good
    ├── APIError                  the server answered with an error (status_code, problem, detail)
    │   ├── BadRequest            400
    │   ├── AuthenticationError   401: missing, unknown or revoked API key
    │   ├── PermissionDenied      403
    │   ├── NotFound              404: no such model, dataset, job, artifact ...
    │   ├── Conflict              409: e.g. deleting a dataset a running job uses
    │   ├── PayloadTooLarge       413: an upload over the server's limit
    │   ├── ValidationError       422: the request is not valid; `errors` names each field
    │   ├── RateLimited           429: `retry_after` seconds
    │   └── ServerError           5xx
    │       └── ServiceUnavailable  503
    └── JobError                  a job ended without succeeding (job, error_type, message)
        ├── JobFailed
        └── JobCancelled
"""

from __future__ import annotations

from typing import Any


class KerasdError(Exception):
    """Base of every exception the SDK raises."""


class APIConnectionError(KerasdError):
    """The API could not be reached (or a stream broke and could not be resumed)."""


class APIError(KerasdError):
    """The API answered with an error. `problem` is the problem document as the server sent it."""

    status_code: int = 0

    def __init__(self, status_code: int, problem: dict[str, Any], *, method: str = "", url: str = "",
                 hint: str = "") -> None:
        self.status_code = status_code
        self.problem = problem
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or problem.get("title") or f"HTTP {status_code}")
        self.method = method
        self.url = url
        # What the SDK adds to the server's answer: what to do about it.
        self.hint = hint
        super().__init__(self._message())

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Field errors: dicts with `field`, `message` (and `in`), as the server listed them."""
        found = self.problem.get("errors")
        return list(found) if isinstance(found, list) else []

    @property
    def field_errors(self) -> dict[str, str]:
        """`{field: message}` for each field error (a field named twice keeps its messages joined)."""
        joined: dict[str, str] = {}
        for error in self.errors:
            field = str(error.get("field", "")) if isinstance(error, dict) else ""
            message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            joined[field] = f"{joined[field]}; {message}" if field in joined else message
        field = self.problem.get("field")
        if isinstance(field, str) and field not in joined:
            joined[field] = self.detail
        return joined

    def _message(self) -> str:
        head = f"{self.status_code} {self.title}: {self.detail}" if self.title else f"{self.status_code}: {self.detail}"
        lines = [head]
        for error in self.errors[:20]:
            if isinstance(error, dict):
                lines.append(f"  - {error.get('field', '')}: {error.get('message', '')}")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class BadRequest(APIError):
    status_code = 400


class AuthenticationError(APIError):
    status_code = 401


class PermissionDenied(APIError):
    status_code = 403


class NotFound(APIError):
    status_code = 404


class Conflict(APIError):
    status_code = 409


class PayloadTooLarge(APIError):
    status_code = 413


class ValidationError(APIError):
    status_code = 422


class RateLimited(APIError):
    status_code = 429

    def __init__(self, status_code: int, problem: dict[str, Any], *, retry_after: float | None = None,
                 method: str = "", url: str = "", hint: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(status_code, problem, method=method, url=url, hint=hint)


class ServerError(APIError):
    status_code = 500


class ServiceUnavailable(ServerError):
    status_code = 503


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest, 401: AuthenticationError, 403: PermissionDenied, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 422: ValidationError, 429: RateLimited, 503: ServiceUnavailable,
}


def error_class(status_code: int) -> type[APIError]:
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return ServerError
    return APIError


class JobError(KerasdError):
    """A job ended without succeeding. `job` is the job document; `error_type` and `message` say why."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.job_id: str = job.get("id", "")
        self.status: str = job.get("status", "")
        error = job.get("error") or {}
        self.error_type: str = error.get("type", "") if isinstance(error, dict) else ""
        self.message: str = error.get("message", "") if isinstance(error, dict) else str(error)
        reason = f"{self.error_type}: {self.message}" if self.error_type else (self.message or "no reason given")
        super().__init__(f"job {self.job_id} {self.status}: {reason}")


class JobFailed(JobError):
    pass


class JobCancelled(JobError):
    pass
