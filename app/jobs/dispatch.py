"""Handing a stored job to the workers, after the commit that stored it: its `queued` event first (a worker may
take it at once, and its `started` must come after), then the queue message, a job that cannot be queued ending
failed rather than waiting forever; and telling a cancelled job's followers, or its worker, that it stops."""

from __future__ import annotations

import logging

from redis import Redis
from sqlalchemy.orm import Session

from app.core import events
from app.core.control import CANCEL, control_channel
from app.core.errors import Problem
from app.core.queue import announce_and_enqueue
from app.core.settings import Settings
from app.core.tables import Job
from app.jobs import service

log = logging.getLogger("kerasd.api")


def send_job(redis_client: Redis, session: Session, job: Job, config: Settings, *, what: str = "job",
             **data: object) -> None:
    """Publish the job's `queued` event and queue it; a 503 (the job marked failed) when the queue is away."""
    try:
        # The job's own columns, which the fair scheduler reads too (the request holds the same).
        announce_and_enqueue(redis_client, job.id, kind=job.kind, queue=job.queue, priority=job.priority,
                             maxlen=config.event_stream_maxlen, **data)
    except Exception as exc:
        log.exception("could not enqueue job %s", job.id)
        service.fail_unqueued(session, job=job, reason=f"the job queue is unavailable: {exc}")
        session.commit()
        raise Problem(503, "Queue Unavailable", f"The {what} was stored but could not be queued (Redis is "
                      "unreachable); it is marked failed. Try again shortly.", job_id=job.id) from None


def announce_cancel(redis_client: Redis, job_id: str, outcome: str, config: Settings) -> None:
    """A job cancelled in the queue ends its event stream; a running one is told on its control channel."""
    if outcome == "cancelled":
        events.publish(redis_client, job_id, "cancelled", {"status": "cancelled", "while": "queued"},
                       maxlen=config.event_stream_maxlen, ttl_s=config.event_stream_ttl_s)
    else:
        # The worker listens on this channel and stops within a batch; it also sees the SQL flag when it
        # renews its lease, should this message be lost.
        redis_client.publish(control_channel(job_id), CANCEL)
