"""Celery tasks: thin wrappers that hand a job id to workers.runner."""

from __future__ import annotations

import functools
import os
import socket
import threading

import redis
from celery import signals

from app.core.queue import enqueue_job, queues_served
from app.core.settings import get_settings
from app.core.workers_registry import ANNOUNCE_EVERY_S, announce, withdraw
from app.specchecker.building import versions
from workers import log_setup, runner, sweeps  # noqa: F401  (log_setup: Celery's logging signal)
from workers.array_cache import ArrayCache
from workers.celery_app import celery
from workers.reaper import Reaper
from workers.scheduling import TurnKeeper
from workers.webhooks import WebhookSender

WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


@functools.lru_cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


@functools.lru_cache
def _cache() -> ArrayCache:
    settings = get_settings()
    return ArrayCache(settings.resolved_cache_dir, max_bytes=settings.worker_cache_bytes)


@celery.task(name="kerasd.run_job", acks_late=True, reject_on_worker_lost=True, bind=True)
def run_job(self, job_id: str) -> str:
    # The queue the message came from: its turn is for that queue's jobs (workers/scheduling.py).
    queue = (self.request.delivery_info or {}).get("routing_key")
    try:
        return runner.run_job(job_id, settings=get_settings(), redis_client=_redis(), cache=_cache(),
                              owner=WORKER_NAME, queue=queue)
    finally:
        _webhooks.wake()  # the job's end stored its deliveries: send them now, not at the next poll


_stop_announcing = threading.Event()


def _requeue(job) -> None:
    # The job's own columns, which the fair scheduler reads too (the request holds the same).
    enqueue_job(job.id, queue=job.queue, priority=job.priority)


_reaper = Reaper(interval_s=get_settings().reaper_interval_s, requeue=_requeue,
                 gc_interval_s=get_settings().blob_gc_interval_s, gc_grace_s=get_settings().blob_gc_grace_s,
                 each_round=lambda: sweeps.step_all(_redis()))
_turns = TurnKeeper(interval_s=get_settings().reaper_interval_s, broker_url=get_settings().resolved_broker_url)
_webhooks = WebhookSender(settings=get_settings(), owner=WORKER_NAME)


def _worker_info() -> dict:
    settings = get_settings()
    found = versions()
    # The backend it runs is what the API routes by and refuses unseen backends by (app/jobs/feasibility.py).
    return {**found, "queue": settings.queue, "gpus": settings.worker_gpus,
            "queues": queues_served(settings.queue, settings.worker_gpus, found["backend"]), "pid": os.getpid()}


def _announce_forever(info: dict) -> None:
    while not _stop_announcing.wait(ANNOUNCE_EVERY_S):
        try:
            announce(_redis(), WORKER_NAME, info)
        except redis.RedisError:
            pass  # the next round tries again; /version just misses this worker meanwhile


@signals.worker_ready.connect
def _on_ready(**_kwargs) -> None:
    # The first announcement before Celery logs "ready.": a job for this worker's backend submitted once the
    # worker says it is ready is not refused as a backend no worker runs (the JAX worker's versions() takes
    # seconds to import its backend, and a bench submitting at "ready." got that 422).
    info = _worker_info()
    try:
        announce(_redis(), WORKER_NAME, info)
    except redis.RedisError:
        pass  # the thread's next round tries again
    threading.Thread(target=_announce_forever, args=(info,), name="announce", daemon=True).start()
    _reaper.start()
    _turns.start()
    _webhooks.start()


@signals.worker_shutdown.connect
def _on_shutdown(**_kwargs) -> None:
    _stop_announcing.set()
    _reaper.stop()
    _turns.stop()
    _webhooks.stop()
    try:
        withdraw(_redis(), WORKER_NAME)
    except redis.RedisError:
        pass
