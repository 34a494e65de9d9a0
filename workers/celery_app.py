"""The Celery app of the workers, with the delivery settings of DESIGN.md §7.

Start a worker with `kerasd worker` (one process, one job at a time, TensorFlow imported once).
"""

from __future__ import annotations

from celery import Celery

from app.core.queue import broker_transport_options
from app.core.settings import get_settings

settings = get_settings()

celery = Celery("kerasd", broker=settings.resolved_broker_url, include=["workers.tasks"])
celery.conf.update(
    # At-least-once: a job's message is acknowledged only when the task returns, and a worker that dies
    # mid-job leaves it to be delivered again; SQL leases and attempts make the effect exactly-once.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Priorities (0-9, one Redis list each) and the visibility timeout, as the API's producer has them.
    broker_transport_options=broker_transport_options(settings),
    broker_connection_retry_on_startup=True,
    task_default_queue=settings.queue,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_cancel_long_running_tasks_on_connection_loss=False,
)
app = celery  # `celery -A workers.celery_app` finds it under either name
