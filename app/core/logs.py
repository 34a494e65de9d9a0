"""Structured logs: one JSON object a line, carrying the request id (API) or the job id (worker) of the line.

The ids live in context variables: the API's middleware sets the request id for everything the request runs
(FastAPI copies the context into its thread pool), and the worker's scheduler sets the job id it claimed.
`KERASD_LOG_FORMAT=text` keeps plain lines for a person at a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("kerasd_request_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("kerasd_tenant_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("kerasd_job_id", default=None)

CONTEXT = {"request_id": request_id_var, "tenant_id": tenant_id_var, "job_id": job_id_var}
# Fields a log call may add with `extra={...}`; anything else in a record is logging's own.
EXTRA_FIELDS = ("method", "route", "path", "status", "duration_ms", "attempt", "queue", "worker")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in (*CONTEXT, *EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT if getattr(record, name, None))
        return f"{text} [{ids}]" if ids else text


def handler(log_format: str) -> logging.Handler:
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    out.addFilter(ContextFilter())
    return out


def configure(log_format: str, *, level: int = logging.INFO, loggers: tuple[str, ...] = ()) -> None:
    """Send the root logger (and `loggers`, which keep their own handlers otherwise) through one handler."""
    one = handler(log_format)
    root = logging.getLogger()
    root.handlers[:] = [one]
    root.setLevel(level)
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers[:] = [one]
        logger.propagate = False
