"""Fair scheduling between tenants, on top of the Celery queue and the SQL claim.

The API still sends one message per queued job (after its commit), but a message is a turn, not an order:
the worker that receives one on queue Q claims the job the scheduler picks among everything claimable in Q:

1. tenants with a claimable job in Q, minus those already at their running-jobs quota;
2. the tenant with the fewest running jobs first, then the one served longest ago (`tenants.last_claim_at`):
   one tenant's hundred queued jobs take turns with another tenant's one, even on a single worker;
3. within the tenant, a job whose worker was lost (its lease expired) first, then the most urgent priority,
   then the longest waiting: each tenant's jobs of one priority in one queue form a lane, served in the order
   they entered the queue (tickets the database gives, migrations 0007; `GET /v1/jobs/{id}`'s queue_position
   counts in this same order).

Each of these questions costs the same with a million jobs stored as with a hundred (app/core/repositories/jobs.py:
partial indexes on queued and on running jobs, the waiting tenants found by a loose index scan).

Why this keeps at-least-once: each job message adds one turn to Q and each claim uses one, so Q never has
fewer turns than claimable jobs. A turn that finds nothing claimable is surplus (a duplicate delivery, a job
cancelled or taken by another turn). A turn that finds only jobs of tenants at their quota is handed back to
Q after KERASD_SCHEDULER_RETRY_S, so those jobs still have their turns when a slot frees. The claim itself is
jobstate's guarded UPDATE (fencing unchanged), taken under a lock on the tenant's row, so two workers cannot
both fill a tenant's last running slot.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import redis

from app.core.database import session_scope
from app.core.logs import job_id_var
from app.core.queue import enqueue_job
from app.core.quotas import limits_of
from app.core.repositories import jobs, tenants
from app.core.settings import Settings
from app.core.sql import ask
from app.core.tables import utcnow
from workers import jobstate

log = logging.getLogger("kerasd.scheduler")
NEVER = datetime.min


def turn_order(queue: str, settings: Settings, now: datetime) -> tuple[list[str], bool]:
    """(tenants to try, in order; whether anything in the queue is claimable at all)."""
    with session_scope() as session:
        waiting = ask(session, jobs.waiting_tenants(queue=queue, now=now))
        if not waiting:
            return [], False
        running = ask(session, jobs.running_by_tenant(now=now))
        rows = ask(session, tenants.scheduling_rows(tenant_ids=waiting))
    order = []
    for tenant_id in waiting:
        limit = limits_of(rows.get(tenant_id), settings).running_jobs
        if limit > 0 and running.get(tenant_id, 0) >= limit:
            continue
        last = rows[tenant_id].last_claim_at if tenant_id in rows else None
        order.append((running.get(tenant_id, 0), (last or NEVER).replace(tzinfo=None), tenant_id))
    return [tenant_id for *_, tenant_id in sorted(order)], True


def _claim_for(tenant_id: str, queue: str, *, owner: str, settings: Settings) -> tuple[str, int] | None:
    """The tenant's next job in the queue, claimed under the tenant's row lock; None if it has no turn now."""
    now = utcnow()
    with session_scope() as session:
        tenant = tenants.lock_tenant(session, tenant_id=tenant_id)
        limit = limits_of(tenant, settings).running_jobs
        if limit > 0 and ask(session, jobs.running_of_tenant(tenant_id=tenant_id, now=now)) >= limit:
            return None
        for job_id in jobs.next_jobs(session, tenant_id=tenant_id, queue=queue, now=now):
            attempt = jobstate.take(session, job_id=job_id, owner=owner, lease_s=settings.lease_seconds, now=now)
            if attempt is not None:
                if tenant is not None:
                    tenants.mark_claimed(session, tenant_id=tenant_id, now=now)
                return job_id, attempt
    return None


@jobstate.retrying
def claim_next(*, hint_job_id: str, queue: str | None, owner: str, settings: Settings) -> tuple[str, int] | None:
    """Claim the job this turn goes to: (job id, attempt), or None when the turn has nothing to take."""
    job_id_var.set(None)
    if queue is None:
        with session_scope() as session:
            queue = jobs.queue_of(session, job_id=hint_job_id)
        if queue is None:  # neither the message nor the job says which queue: the old way, the job itself
            attempt = jobstate.claim(job_id=hint_job_id, owner=owner, lease_s=settings.lease_seconds)
            return None if attempt is None else (hint_job_id, attempt)
    order, anything = turn_order(queue, settings, utcnow())
    for tenant_id in order:
        claimed = _claim_for(tenant_id, queue, owner=owner, settings=settings)
        if claimed is not None:
            job_id_var.set(claimed[0])
            if claimed[0] != hint_job_id:
                log.info("message of job %s: took job %s of tenant %s (fair turn)", hint_job_id, claimed[0],
                         tenant_id)
            return claimed
    if anything:
        # Every claimable job belongs to a tenant at its running-jobs quota: keep the turn for later.
        log.info("queue %s: every waiting tenant is at its running-jobs quota; the turn of job %s goes back "
                 "to the queue in %.1f s", queue, hint_job_id, settings.scheduler_retry_s)
        time.sleep(settings.scheduler_retry_s)
        enqueue_job(hint_job_id, queue=queue, priority=0)
    return None


# Kombu's Redis transport keeps one list per priority step: `queue`, then `queue\x06\x16N` for N = 1..9.
PRIORITY_SEP = "\x06\x16"
MAX_TOP_UP = 100


def broker_lists(queue: str) -> list[str]:
    return [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in range(1, 10))]


def missing_turns(broker, now: datetime | None = None) -> dict[str, tuple[int, str]]:
    """{queue: (claimable jobs beyond the turns waiting in it, one of its claimable jobs)}."""
    now = now or utcnow()
    with session_scope() as session:
        claimable = ask(session, jobs.claimable_by_queue(now=now))
    if not claimable:
        return {}
    pipe = broker.pipeline()
    for queue, _, _ in claimable:
        for key in broker_lists(queue):
            pipe.llen(key)
    lengths = pipe.execute()
    missing = {}
    for index, (queue, count, some_job) in enumerate(claimable):
        waiting = sum(lengths[index * 10:(index + 1) * 10])
        if count > waiting:
            missing[queue] = (min(count - waiting, MAX_TOP_UP), some_job)
    return missing


def send_turns(missing: dict[str, tuple[int, str]]) -> dict[str, int]:
    for queue, (count, some_job) in missing.items():
        for _ in range(count):
            enqueue_job(some_job, queue=queue, priority=0)
        log.warning("queue %s had %d claimable job(s) more than waiting messages: sent %d turn(s)", queue,
                    count, count)
    return {queue: count for queue, (count, _) in missing.items()}


def top_up_turns(broker, now: datetime | None = None) -> dict[str, int]:
    """Send a turn for each claimable job beyond the turns waiting in its queue; {queue: turns sent}.

    A safety net: a turn can be lost where no ack protects it (Redis restarted without its append-only file,
    a hand-back that failed). Surplus turns cost a skipped message each, so every worker may top up."""
    return send_turns(missing_turns(broker, now))


class TurnKeeper:
    """A worker thread that tops up turns every `interval_s` (workers/tasks.py starts it).

    A turn a worker has just taken is in neither the queue nor a claim for a moment; so a queue is topped up
    only by what it lacked in two rounds running."""

    def __init__(self, *, interval_s: float, broker_url: str) -> None:
        self._interval_s = interval_s
        self._broker = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="turn-keeper", daemon=True)
        self._lacked: dict[str, int] = {}

    def start(self) -> None:
        self._thread.start()

    def round(self) -> dict[str, int]:
        missing = missing_turns(self._broker)
        confirmed = {queue: (min(count, self._lacked[queue]), job) for queue, (count, job) in missing.items()
                     if queue in self._lacked}
        self._lacked = {queue: count for queue, (count, _) in missing.items()}
        return send_turns(confirmed)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.round()
            except Exception:  # the database or Redis may be away for a moment; the next round tries again
                log.exception("topping up job turns failed")

    def stop(self) -> None:
        self._stop.set()
