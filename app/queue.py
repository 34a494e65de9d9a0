"""Sends jobs to the workers by task name, so the API never imports worker code (DESIGN.md §6)."""

from __future__ import annotations

import functools

from celery import Celery

from app.settings import get_settings

RUN_JOB_TASK = "kerasd.run_job"


@functools.lru_cache
def producer() -> Celery:
    settings = get_settings()
    producer_app = Celery("kerasd-api", broker=settings.resolved_broker_url, set_as_current=False)
    # Every Redis client of the broker applies its own visibility timeout when restoring unacknowledged
    # messages: it must match the workers', or a long job could be delivered twice.
    producer_app.conf.broker_transport_options = {"visibility_timeout": settings.broker_visibility_timeout_s}
    return producer_app


def enqueue_job(job_id: str) -> None:
    """Call only after the commit that created the job: a worker may pick it up at once."""
    settings = get_settings()
    producer().send_task(RUN_JOB_TASK, args=[job_id], queue=settings.queue, ignore_result=True,
                         retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})
