"""The worker's logs in kerasd's format (app/core/logs.py): JSON lines carrying the job id the worker is on.

Connected to Celery's `setup_logging` signal, so Celery leaves logging to kerasd instead of installing its
own handlers.
"""

from __future__ import annotations

import logging

from celery import signals

from app.core import logs
from app.core.settings import get_settings


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **_kwargs) -> None:
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else (loglevel or logging.INFO)
    logs.configure(get_settings().log_format, level=level if isinstance(level, int) else logging.INFO)
