"""The jobs tables as both processes ask them: the scheduler's claim, the lease, epochs (and the metrics kept from
them), checkpoints, artifacts, the end of a job, the reaper and the queue's turns.

Here, in the core, because workers may import only the core (the API's own questions of these tables, the
job answer and the lists, are in app/jobs/repository.py). Each question is one statement whose cost depends
on the number of tenants or of running jobs, never on the number of jobs stored: the queued jobs are found
through the partial index `ix_jobs_queued_lane` (queue, tenant, priority, ticket; queued jobs only), running
ones through `ix_jobs_running_lease` (running jobs only), and counts of queued jobs come from `queue_blocks`,
which triggers keep (migrations 0007).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core import run_metrics
from app.core.run_metrics import Summary
from app.core.sql import Question, Statement, ask, one, scalar
from app.core.tables import QUEUE_LEVEL_SHIFTS, Artifact, EpochLog, Job, JobCheckpoint, JobMetric, ModelSpec, utcnow

# Core tables, not the ORM classes: these statements run as they are written, never through the ORM's
# bookkeeping of loaded objects.
JOBS, EPOCHS, CHECKPOINTS, ARTIFACTS, MODELS, METRICS = (Job.__table__, EpochLog.__table__, JobCheckpoint.__table__,
                                                        Artifact.__table__, ModelSpec.__table__, JobMetric.__table__)

Executor = Session | Connection


def _claimable(now: Any) -> Any:
    """A queued job, or a running one whose lease expired (its worker was lost), with attempts left."""
    return (((JOBS.c.status == "queued") | ((JOBS.c.status == "running") & (JOBS.c.lease_expires_at < now)))
            & (JOBS.c.attempt < JOBS.c.max_attempts))


def _upsert(table: Any, keys: Sequence[str], updated: Sequence[str]) -> Statement:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET updated, in each dialect's construct."""
    def build(insert: Callable[[Any], Any]) -> Any:
        statement = insert(table)
        return statement.on_conflict_do_update(index_elements=list(keys),
                                               set_={name: statement.excluded[name] for name in updated})

    return Statement(postgresql=build(postgresql.insert), sqlite=build(sqlite.insert))


# --- the fair scheduler's questions (workers/scheduling.py) ---------------------------------------------------

# The tenants with a job waiting in a queue: a loose index scan (one index probe per tenant, not a pass over
# the queued jobs), and the tenants with a running job whose lease expired there. The literal 'queued' lets the
# planner use the partial index.
_WAITING_TENANTS = Statement(text(
    "WITH RECURSIVE waiting(tenant_id) AS ("
    " SELECT min(tenant_id) FROM jobs WHERE queue = :queue AND status = 'queued'"
    " UNION ALL"
    " SELECT (SELECT min(j.tenant_id) FROM jobs AS j WHERE j.queue = :queue AND j.status = 'queued'"
    " AND j.tenant_id > waiting.tenant_id) FROM waiting WHERE waiting.tenant_id IS NOT NULL)"
    " SELECT tenant_id FROM waiting WHERE tenant_id IS NOT NULL"
    " UNION SELECT tenant_id FROM jobs WHERE status = 'running' AND lease_expires_at < :now AND queue = :queue"
    " AND attempt < max_attempts"))
# Running jobs per tenant, every queue: an expired lease is a lost worker, not a running job.
_RUNNING_BY_TENANT = Statement(text(
    "SELECT tenant_id, count(*) AS running FROM jobs WHERE status = 'running' AND lease_expires_at >= :now "
    "GROUP BY tenant_id"))
_RUNNING_OF_TENANT = Statement(text(
    "SELECT count(*) FROM jobs WHERE status = 'running' AND lease_expires_at >= :now AND tenant_id = :tenant_id"))
# A tenant's next jobs in a queue: those whose worker was lost first (they were running already), then the
# queued ones in the scheduler's order, the most urgent priority first, then the lane's tickets (arrival).
_EXPIRED_OF_TENANT = Statement(text(
    "SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < :now AND tenant_id = :tenant_id "
    "AND queue = :queue AND attempt < max_attempts ORDER BY lease_expires_at LIMIT :limit"))
_NEXT_QUEUED = Statement(text(
    "SELECT id FROM jobs WHERE queue = :queue AND tenant_id = :tenant_id AND status = 'queued' "
    "AND attempt < max_attempts ORDER BY priority DESC, queue_ticket LIMIT :limit"))
_TAKE = Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"), _claimable(bindparam("now")))
                  .values(status="running", attempt=JOBS.c.attempt + 1, lease_owner=bindparam("owner"),
                          lease_expires_at=bindparam("until"), started_at=bindparam("now"))
                  .returning(JOBS.c.attempt))
_QUEUE_OF = Statement(select(JOBS.c.queue).where(JOBS.c.id == bindparam("job_id")))


def waiting_tenants(*, queue: str, now: datetime) -> Question[list[str]]:
    return Question(_WAITING_TENANTS, {"queue": queue, "now": now}, lambda rows: [row[0] for row in rows])


def running_by_tenant(*, now: datetime) -> Question[dict[str, int]]:
    return Question(_RUNNING_BY_TENANT, {"now": now}, lambda rows: {row[0]: row[1] for row in rows})


def running_of_tenant(*, tenant_id: str, now: datetime) -> Question[int]:
    return Question(_RUNNING_OF_TENANT, {"tenant_id": tenant_id, "now": now}, scalar)


def next_jobs(executor: Executor, *, tenant_id: str, queue: str, now: datetime, limit: int = 5) -> list[str]:
    """The tenant's next claimable jobs in the queue, in the order a worker takes them (at most `limit`)."""
    params = {"tenant_id": tenant_id, "queue": queue, "now": now, "limit": limit}
    expired = ask(executor, Question(_EXPIRED_OF_TENANT, params, lambda rows: [row[0] for row in rows]))
    if len(expired) >= limit:
        return expired
    params["limit"] = limit - len(expired)
    return expired + ask(executor, Question(_NEXT_QUEUED, params, lambda rows: [row[0] for row in rows]))


def take(executor: Executor, *, job_id: str, owner: str, lease_s: int, now: datetime) -> int | None:
    """The claim's guarded UPDATE in the caller's transaction: the new attempt number, or None if the job is not
    claimable (another worker took it, it was cancelled, it has no attempts left)."""
    return ask(executor, Question(_TAKE, {"job_id": job_id, "owner": owner, "now": now,
                                          "until": now + timedelta(seconds=lease_s)}, scalar))


def queue_of(executor: Executor, *, job_id: str) -> str | None:
    return ask(executor, Question(_QUEUE_OF, {"job_id": job_id}, scalar))


# --- the queue's turns (workers/scheduling.py's TurnKeeper) ---------------------------------------------------

# queue_blocks' level whose block is a whole lane: a lane's queued jobs in one row.
LANE_LEVEL = len(QUEUE_LEVEL_SHIFTS) - 1
# Per queue: claimable jobs (queued ones counted from their blocks, expired leases from the running index) and
# one of them, whose id a new turn carries.
_CLAIMABLE_BY_QUEUE = Statement(text(
    "SELECT q.queue, sum(q.n) AS claimable, coalesce(min(q.some_job), (SELECT j.id FROM jobs AS j "
    "WHERE j.queue = q.queue AND j.status = 'queued' LIMIT 1)) AS some_job FROM ("
    f" SELECT queue, sum(queued) AS n, NULL AS some_job FROM queue_blocks WHERE level = {LANE_LEVEL} GROUP BY queue"
    " UNION ALL SELECT queue, count(*), min(id) FROM jobs WHERE status = 'running' AND lease_expires_at < :now"
    " AND attempt < max_attempts GROUP BY queue) AS q GROUP BY q.queue"))
_RUNNING_JOBS_OF = Statement(text("SELECT count(*) FROM jobs WHERE tenant_id = :tenant_id AND status = 'running'"))
_QUEUED_OF_TENANT = Statement(text("SELECT coalesce(sum(queued), 0) FROM queue_blocks WHERE tenant_id = :tenant_id "
                                   f"AND level = {LANE_LEVEL}"))
_QUEUE_DEPTHS = Statement(text(f"SELECT queue, sum(queued) AS queued FROM queue_blocks WHERE level = {LANE_LEVEL} "
                               "GROUP BY queue"))


def claimable_by_queue(*, now: datetime) -> Question[list[tuple[str, int, str]]]:
    """[(queue, claimable jobs, one of them)] for every queue with one."""
    return Question(_CLAIMABLE_BY_QUEUE, {"now": now},
                    lambda rows: [(row.queue, int(row.claimable), row.some_job) for row in rows if row.claimable])


def queued_of_tenant(*, tenant_id: str) -> Question[int]:
    """The tenant's queued jobs, every queue (the queued-jobs quota)."""
    return Question(_QUEUED_OF_TENANT, {"tenant_id": tenant_id}, lambda rows: int(rows[0][0]))


def running_jobs_of(*, tenant_id: str) -> Question[int]:
    """The tenant's running jobs, leases expired or not (what it is shown as using)."""
    return Question(_RUNNING_JOBS_OF, {"tenant_id": tenant_id}, scalar)


def queue_depths() -> Question[dict[str, int]]:
    return Question(_QUEUE_DEPTHS, {}, lambda rows: {row.queue: int(row.queued) for row in rows})


# --- a running job: lease, epochs, checkpoints, the end (workers/jobstate.py) ---------------------------------

# Renewing the lease is the fence: it changes the row only while this attempt owns the running job, and takes
# the row's lock until the transaction ends. It answers whether a cancel was asked meanwhile.
_FENCE = Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"), JOBS.c.attempt == bindparam("own_attempt"),
                                     JOBS.c.status == "running")
                   .values(lease_expires_at=bindparam("until")).returning(JOBS.c.cancel_requested_at))
_RECORD_EPOCH = _upsert(EPOCHS, ["job_id", "epoch"], ["attempt", "logs"])
_SAVE_CHECKPOINT = _upsert(CHECKPOINTS, ["job_id"],
                           ["epoch", "attempt", "blob_sha256", "rng_state", "created_at"])
_STORE_ARTIFACT = _upsert(ARTIFACTS, ["job_id", "name"], ["blob_sha256", "size_bytes", "media_type"])
_END = Statement(update(JOBS).where(JOBS.c.id == bindparam("job_id"))
                 .values(status=bindparam("end_status"), result=bindparam("end_result", type_=JOBS.c.result.type),
                         error=bindparam("end_error", type_=JOBS.c.error.type), finished_at=bindparam("ended_at"),
                         lease_expires_at=None))
_CHECKPOINT = Statement(select(CHECKPOINTS).where(CHECKPOINTS.c.job_id == bindparam("job_id")))
_EPOCHS = Statement(select(EPOCHS.c.epoch, EPOCHS.c.logs).where(EPOCHS.c.job_id == bindparam("job_id"))
                    .order_by(EPOCHS.c.epoch))
_JOB_AND_MODEL = Statement(select(JOBS, MODELS.c.keras_config)
                           .join(MODELS, MODELS.c.id == JOBS.c.model_id).where(JOBS.c.id == bindparam("job_id")))


def renew_lease(executor: Executor, *, job_id: str, attempt: int, lease_s: int) -> tuple[bool, bool]:
    """(whether this attempt still owns the running job, whether a cancel has been requested)."""
    rows = ask(executor, Question(_FENCE, {"job_id": job_id, "own_attempt": attempt,
                                           "until": utcnow() + timedelta(seconds=lease_s)}))
    return bool(rows), bool(rows) and rows[0][0] is not None


def record_epoch(executor: Executor, *, job_id: str, epoch: int, attempt: int, logs: dict[str, Any]) -> None:
    """The epoch's logs, and the job's metric summaries they change, in the caller's transaction (which the
    fence has locked the job in, so no other attempt changes them meanwhile)."""
    ask(executor, Question(_RECORD_EPOCH, {"job_id": job_id, "epoch": epoch, "attempt": attempt, "logs": logs,
                                           "created_at": utcnow()}))
    changed = run_metrics.after_epoch(ask(executor, metrics_of(job_id=job_id)), epoch, logs)
    if changed is None:
        # An epoch recorded again (a resumed attempt): the summaries from every epoch as they now stand.
        changed = run_metrics.summarize(ask(executor, recorded_epochs(job_id=job_id)))
    store_metrics(executor, job_id=job_id, summaries=changed)


# --- a job's metric summaries (job_metrics) -------------------------------------------------------------------

_METRICS_OF = Statement(select(METRICS.c.name, METRICS.c.final, METRICS.c.best, METRICS.c.best_epoch,
                               METRICS.c.last_epoch).where(METRICS.c.job_id == bindparam("job_id")))
_METRIC_SET = ("ON CONFLICT (job_id, name) DO UPDATE SET final = excluded.final, best = excluded.best, "
               "best_epoch = excluded.best_epoch, last_epoch = excluded.last_epoch")
# Every changed summary in one statement, the rows as one JSON parameter; the tenant from the job's row.
_STORE_METRICS = Statement(
    postgresql=text("INSERT INTO job_metrics (job_id, tenant_id, name, final, best, best_epoch, last_epoch) "
                    "SELECT j.id, j.tenant_id, r.name, r.final, r.best, r.best_epoch, r.last_epoch FROM jobs AS j "
                    "CROSS JOIN json_to_recordset(CAST(:rows AS json)) AS r(name text, final double precision, "
                    "best double precision, best_epoch integer, last_epoch integer) "
                    f"WHERE j.id = :job_id {_METRIC_SET}"),
    sqlite=text("INSERT INTO job_metrics (job_id, tenant_id, name, final, best, best_epoch, last_epoch) "
                "SELECT j.id, j.tenant_id, json_extract(r.value, '$.name'), json_extract(r.value, '$.final'), "
                "json_extract(r.value, '$.best'), json_extract(r.value, '$.best_epoch'), "
                "json_extract(r.value, '$.last_epoch') FROM jobs AS j, json_each(:rows) AS r "
                f"WHERE j.id = :job_id {_METRIC_SET}"))


def metrics_of(*, job_id: str) -> Question[dict[str, Summary]]:
    """The job's metric summaries by name."""
    return Question(_METRICS_OF, {"job_id": job_id}, lambda rows: {
        row.name: Summary(row.final, row.best, row.best_epoch, row.last_epoch) for row in rows})


def store_metrics(executor: Executor, *, job_id: str, summaries: Mapping[str, Summary]) -> None:
    """Insert or replace these summaries of the job's metrics."""
    if not summaries:
        return
    rows = [{"name": name, "final": s.final, "best": s.best, "best_epoch": s.best_epoch, "last_epoch": s.last_epoch}
            for name, s in summaries.items()]
    ask(executor, Question(_STORE_METRICS, {"job_id": job_id, "rows": json.dumps(rows)}))


def save_checkpoint(executor: Executor, *, job_id: str, epoch: int, attempt: int, blob_sha256: str,
                    rng_state: dict[str, Any]) -> None:
    ask(executor, Question(_SAVE_CHECKPOINT, {"job_id": job_id, "epoch": epoch, "attempt": attempt,
                                              "blob_sha256": blob_sha256, "rng_state": rng_state,
                                              "created_at": utcnow()}))


def store_artifact(executor: Executor, *, job_id: str, name: str, blob_sha256: str, size_bytes: int,
                   media_type: str) -> None:
    ask(executor, Question(_STORE_ARTIFACT, {"job_id": job_id, "name": name, "blob_sha256": blob_sha256,
                                             "size_bytes": size_bytes, "media_type": media_type,
                                             "created_at": utcnow()}))


def end_job(executor: Executor, *, job_id: str, status: str, result: dict[str, Any] | None,
            error: dict[str, Any] | None) -> None:
    """The job's end (after `renew_lease` fenced it in the same transaction); an evaluate job's metrics are
    its summaries."""
    ask(executor, Question(_END, {"job_id": job_id, "end_status": status, "end_result": result, "end_error": error,
                                  "ended_at": utcnow()}))
    evaluated = (result or {}).get("evaluation")
    if status == "succeeded" and isinstance(evaluated, dict) and isinstance(evaluated.get("metrics"), dict):
        store_metrics(executor, job_id=job_id, summaries=run_metrics.evaluation(evaluated["metrics"]))


def latest_checkpoint(*, job_id: str) -> Question[Any]:
    """The job's checkpoint row (epoch, attempt, blob_sha256, rng_state), or None."""
    return Question(_CHECKPOINT, {"job_id": job_id}, one)


def recorded_epochs(*, job_id: str) -> Question[list[tuple[int, dict[str, Any]]]]:
    return Question(_EPOCHS, {"job_id": job_id}, lambda rows: [(row.epoch, row.logs) for row in rows])


def job_and_model(*, job_id: str) -> Question[Any]:
    """The job's row with its model's canonical Keras config (`keras_config`), or None."""
    return Question(_JOB_AND_MODEL, {"job_id": job_id}, one)


# --- the reaper (workers/reaper.py) ---------------------------------------------------------------------------

_EXPIRED = Statement(text(
    "SELECT id, attempt, max_attempts FROM jobs WHERE status = 'running' AND lease_expires_at < :now ORDER BY id"))
_REAP_GUARD = (JOBS.c.id == bindparam("job_id"), JOBS.c.status == "running",
               JOBS.c.attempt == bindparam("lost_attempt"), JOBS.c.lease_expires_at < bindparam("now"))
_REQUEUE = Statement(update(JOBS).where(*_REAP_GUARD).values(status="queued", lease_owner=None, lease_expires_at=None)
                     .returning(JOBS.c.id, JOBS.c.request, JOBS.c.queue, JOBS.c.priority))
_FAIL_LOST = Statement(update(JOBS).where(*_REAP_GUARD)
                       .values(status="failed", finished_at=bindparam("now"), lease_expires_at=None,
                               error=bindparam("lost_error", type_=JOBS.c.error.type))
                       .returning(JOBS.c.id))


def expired_leases(*, now: datetime) -> Question[list[Any]]:
    """Running jobs whose lease expired (id, attempt, max_attempts), in id order (the order rows are locked)."""
    return Question(_EXPIRED, {"now": now})


def requeue_lost(executor: Executor, *, job_id: str, attempt: int, now: datetime) -> Any:
    """Back to the queue, if still that lost attempt; the job's (id, request, queue, priority: what its queue
    message is sent with), or None."""
    return ask(executor, Question(_REQUEUE, {"job_id": job_id, "lost_attempt": attempt, "now": now}, one))


def fail_lost(executor: Executor, *, job_id: str, attempt: int, now: datetime, error: dict[str, str]) -> bool:
    return bool(ask(executor, Question(_FAIL_LOST, {"job_id": job_id, "lost_attempt": attempt, "now": now,
                                                    "lost_error": error})))
