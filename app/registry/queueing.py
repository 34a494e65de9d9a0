"""Sending a job the registry made (an export) after the commit that stored it, as the jobs routes send theirs: its
`queued` event first (a worker may take it at once), then the queue message; a job that cannot be queued ends
failed rather than waiting forever."""

from __future__ import annotations

import logging

from fastapi import Request
from redis import RedisError
from sqlalchemy.orm import Session

from app.core import events
from app.core.errors import Problem
from app.core.queue import enqueue_job
from app.core.settings import Settings
from app.core.tables import Job
from app.jobs import service as jobs

log = logging.getLogger("kerasd.api")


def send_job(request: Request, session: Session, job: Job, config: Settings) -> None:
    try:
        events.publish(request.app.state.redis_sync, job.id, "queued", {"kind": job.kind},
                       maxlen=config.event_stream_maxlen)
    except RedisError:  # progress is best effort; enqueueing below says whether Redis is really gone
        log.exception("could not publish the queued event of job %s", job.id)
    try:
        enqueue_job(job.id, queue=job.queue, priority=job.priority)
    except Exception as exc:
        log.exception("could not enqueue job %s", job.id)
        jobs.fail_unqueued(session, job=job, reason=f"the job queue is unavailable: {exc}")
        session.commit()
        raise Problem(503, "Queue Unavailable", "The export job was stored but could not be queued (Redis is "
                      "unreachable); it is marked failed. Try again shortly.", job_id=job.id) from None
