"""Sends jobs to the workers by task name, so the API never imports worker code (DESIGN.md §6)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Celery

from app.core import events
from app.core.settings import Settings, get_settings

log = logging.getLogger("kerasd.queue")

RUN_JOB_TASK = "kerasd.run_job"


def broker_transport_options(settings: Settings) -> dict:
    """Shared by every Redis client of the broker (API, workers, reaper): they must agree."""
    options = {"visibility_timeout": settings.broker_visibility_timeout_s, "priority_steps": list(range(10)),
               "queue_order_strategy": "priority"}
    if settings.broker_restore_interval_s is not None:
        # How soon an idle worker takes back a message whose consumer went silent (kombu sweeps every
        # interval x throttle seconds; its default is 100 s).
        options.update(unacked_restore_interval=settings.broker_restore_interval_s, unacked_restore_throttle=1)
    return options


@functools.lru_cache
def producer() -> Celery:
    settings = get_settings()
    producer_app = Celery("kerasd-api", broker=settings.resolved_broker_url, set_as_current=False)
    # Every Redis client of the broker applies its own visibility timeout when restoring unacknowledged
    # messages: it must match the workers', or a long job could be delivered twice.
    producer_app.conf.broker_transport_options = broker_transport_options(settings)
    return producer_app


def queue_for(base: str, gpus: int, backend: str | None = None) -> str:
    """Queues by backend and resource: `base` for jobs any TensorFlow worker can run, `base.gpu` for one GPU,
    `base.gpuN` for N; another backend's are `base.<backend>`, `base.<backend>.gpu`, ... The TensorFlow backend
    keeps the names queues had before jobs named a backend, so the jobs queued then still find their workers
    (a job without a backend, stored before, or an export, goes there too)."""
    prefix = base if backend in (None, "tensorflow") else f"{base}.{backend}"
    if gpus <= 0:
        return prefix
    return f"{prefix}.gpu" if gpus == 1 else f"{prefix}.gpu{gpus}"


def queues_served(base: str, gpus: int, backend: str | None = None) -> list[str]:
    """What a worker on `backend` with `gpus` GPUs consumes: its backend's jobs that fit it, the biggest first."""
    return [queue_for(base, n, backend) for n in range(gpus, -1, -1)]


def enqueue_job(job_id: str, *, queue: str | None = None, priority: int = 5) -> None:
    """Call only after the commit that created the job: a worker may pick it up at once."""
    settings = get_settings()
    # Kombu's Redis transport serves lower numbers first; kerasd's priority 9 is the most urgent.
    producer().send_task(RUN_JOB_TASK, args=[job_id], queue=queue or settings.queue, priority=9 - priority,
                         ignore_result=True, retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})


def announce_and_enqueue(redis_client: Any, job_id: str, *, kind: str, queue: str, priority: int,
                         maxlen: int | None = None, ttl_s: int | None = None, **data: object) -> None:
    """After the commit that stored a job: its `queued` event first (a worker may take it at once, and its
    `started` must come after), best effort, then its queue message, whose failure is the caller's to handle."""
    try:
        events.publish(redis_client, job_id, "queued", {"kind": kind, **data}, maxlen=maxlen, ttl_s=ttl_s)
    except Exception:  # progress is best effort; enqueueing below says whether Redis is really gone
        log.exception("could not publish the queued event of job %s", job_id)
    enqueue_job(job_id, queue=queue, priority=priority)
