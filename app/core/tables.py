"""SQL tables: tenants and API keys, model specs, blobs (datasets and artifacts as chunks), datasets, jobs,
epochs, artifacts, what makes jobs experiments (tags, params, metrics), and (in app/core/webhook_tables.py,
sweep_tables.py and registry_tables.py, loaded with these) webhooks and their deliveries, sweeps with their trials
and the model registry.
Every resource row belongs to one tenant; blobs are shared, content-addressed storage that a tenant reaches
only through its own rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


# Rows from before tenants existed, and keyless requests of the embedded default, belong to this tenant.
DEFAULT_TENANT_ID = "default"


class Tenant(Base):
    """Who owns resources. Quota columns left NULL take the server's settings (KERASD_MAX_*_PER_TENANT)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    max_running_jobs: Mapped[int | None] = mapped_column(Integer)
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer)
    max_stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    requests_per_s: Mapped[float | None] = mapped_column(Float)
    request_burst: Mapped[int | None] = mapped_column(Integer)
    # When a worker last took one of this tenant's jobs: the fair scheduler serves the longest-waiting first.
    last_claim_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key is shown once; only its sha256 is kept (the secret is 256 random bits, so a plain hash is
    as good as a slow one), with a visible prefix to find the row and to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # user | admin
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


def _tenant_column() -> Mapped[str]:
    return mapped_column(String(32), ForeignKey("tenants.id"), index=True)


class ModelSpec(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_column()
    name: Mapped[str] = mapped_column(String(200))
    # The spec as the user sent it, and Keras's canonical JSON as the spec checker built it.
    spec: Mapped[dict[str, Any]]
    keras_config: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any]]
    # A model uploaded as a whole (.keras / .h5) keeps that file, so a job can start from its weights:
    # `model.load_weights` reads either format when the file keeps its suffix ("keras" or "h5").
    weights_sha256: Mapped[str | None] = mapped_column(String(64), ForeignKey("blobs.sha256"), index=True)
    weights_format: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Blob(Base):
    """Content-addressed bytes; a dataset or artifact points at one. The same bytes are stored once."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlobChunk(Base):
    __tablename__ = "blob_chunks"

    blob_sha256: Mapped[str] = mapped_column(
        String(64), ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_column()
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))  # npy | npz
    blob_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("blobs.sha256"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # What the tenant's quota is charged: its arrays' expanded size where that is more than size_bytes (a
    # compressed .npz); NULL (datasets stored before 0011): size_bytes.
    charged_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # [{"name", "shape", "dtype"}, ...] read from the array headers at upload.
    arrays: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


QUEUED = text("status = 'queued'")
RUNNING = text("status = 'running'")
IN_SWEEP = text("sweep_id IS NOT NULL")


class Job(Base):
    __tablename__ = "jobs"
    # An index per question (migrations 0007), so that none costs more as jobs pile up: the queued jobs of a
    # queue by tenant, then in the scheduler's order (priority, then ticket), for the claim, the tenants with a
    # job waiting and queue positions; running jobs by lease, for the reaper and the claim of an expired lease;
    # a tenant's jobs newest first, alone or by status or by model, for the lists' pages.
    __table_args__ = (
        Index(
            "ix_jobs_queued_lane",
            "queue",
            "tenant_id",
            text("priority DESC"),
            "queue_ticket",
            postgresql_where=QUEUED,
            sqlite_where=QUEUED,
        ),
        Index("ix_jobs_running_lease", "lease_expires_at", postgresql_where=RUNNING, sqlite_where=RUNNING),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_jobs_tenant_status_created", "tenant_id", "status", "created_at", "id"),
        Index("ix_jobs_tenant_model_created", "tenant_id", "model_id", "created_at", "id"),
        # Lists sorted by name, and a sweep's trials (migration 0009).
        Index("ix_jobs_tenant_name", "tenant_id", "name", "id"),
        Index(
            "ix_jobs_tenant_sweep_created",
            "tenant_id",
            "sweep_id",
            "created_at",
            "id",
            postgresql_where=IN_SWEEP,
            sqlite_where=IN_SWEEP,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(16))  # fit
    status: Mapped[str] = mapped_column(String(16), index=True)  # one of app.core.statuses.JOB_STATUSES
    model_id: Mapped[str] = mapped_column(String(32), ForeignKey("models.id"), index=True)
    # The job contract (app/core/contract.py): JobRequest.model_dump(mode="json"), read back by the worker.
    request: Mapped[dict[str, Any]]
    # Fencing (DESIGN.md §7): each run bumps attempt; a write from an older attempt is refused.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # {"type": "...", "message": "..."} when failed.
    error: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    # Set by POST /cancel on a running job; the worker sees it and stops at the next batch (DESIGN.md §9).
    cancel_requested_at: Mapped[datetime | None]
    # The Celery queue and priority the job was sent with (also in `request`), as columns for the scheduler.
    queue: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=5)
    # The job's place in its lane (its tenant's jobs of one priority in one queue), given by the database when
    # the job enters the queue (migrations 0006: triggers); the scheduler serves a lane in ticket order.
    queue_ticket: Mapped[int | None] = mapped_column(
        BigInteger, server_default=FetchedValue(), server_onupdate=FetchedValue()
    )
    # The run as an experiment (DESIGN.md §14): set at submit, changed with PATCH. `tags` and `params` are the
    # job's own copies for its answer (one row read, no aggregate); job_tags and job_params hold the same values
    # as indexed rows, for the lists' filters and sorts. NULL tags/params (jobs from before 0009 without
    # them) read as empty.
    name: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any] | None]
    params: Mapped[dict[str, Any] | None]
    # The sweep whose trial this job is; null until sweeps exist.
    sweep_id: Mapped[str | None] = mapped_column(String(32))


class QueueLane(Base):
    """The next ticket of a lane: a tenant's queued jobs of one priority in one queue. Kept by the database."""

    __tablename__ = "queue_lanes"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_ticket: Mapped[int] = mapped_column(BigInteger)


class QueueBlock(Base):
    """How many of a lane's jobs with tickets in one block are queued, at four levels of blocks: 32 tickets,
    1,024, 32,768, and the whole lane (QUEUE_LEVEL_SHIFTS: block = ticket >> shift). Kept by the database as jobs
    enter and leave the queue (rows at zero are deleted). A queue position sums at most 31 blocks of each level
    and counts at most 31 jobs, so it costs about the same with a million jobs queued as with ten."""

    __tablename__ = "queue_blocks"

    # Level first in the key: every question reads one level's rows (migrations 0006).
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    queued: Mapped[int] = mapped_column(Integer)


# Per level of queue_blocks, the shift from a ticket to its block; the last level is the whole lane (a ticket is
# below 2**63). The triggers of migration 0007 use the same shifts.
QUEUE_LEVEL_SHIFTS = (5, 10, 15, 63)


class WeightsFile(Base):
    """An uploaded `.weights.h5`, to start a job from (warm start)."""

    __tablename__ = "weights_files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_column()
    name: Mapped[str] = mapped_column(String(200))
    blob_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("blobs.sha256"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EpochLog(Base):
    __tablename__ = "job_epochs"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    logs: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobCheckpoint(Base):
    """The latest whole training state of a job (a `.keras` file: weights, optimizer, compile) and the
    epoch it follows, from which a later attempt resumes; one row per job, replaced every epoch."""

    __tablename__ = "job_checkpoints"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)  # the last finished epoch, 0-based as Keras counts
    attempt: Mapped[int] = mapped_column(Integer)
    blob_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("blobs.sha256"), index=True)
    # Python's and NumPy's random states at the end of that epoch.
    rng_state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredFile:
    """The columns of a named file kept as a blob (after the owner's key columns): a job's artifact, or a
    registered model version's own reference to one (app/core/registry_tables.py)."""

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    blob_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("blobs.sha256"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(StoredFile, Base):
    __tablename__ = "artifacts"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)


class JobTag(Base):
    """A job's tag, as a row: the list filters (`?tag=`) find a tenant's jobs with a tag by its index."""

    __tablename__ = "job_tags"
    __table_args__ = (Index("ix_job_tags_tenant_tag", "tenant_id", "tag", "job_id"),)

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32))


class JobValue:
    """The key of one named value of a job (a param, a metric), and the tenant that its indexes sort by; first in
    the table (sort_order), before the value's own columns."""

    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True, sort_order=-1
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True, sort_order=-1)
    tenant_id: Mapped[str] = mapped_column(String(32), sort_order=-1)


class JobParam(JobValue, Base):
    """One scalar hyperparameter of a job's request (app/experiments/params.py): a number (booleans as 0/1) or a
    text, indexed per tenant and name so that a list sorts by it (`?sort=params.optimizer.learning_rate`)."""

    __tablename__ = "job_params"
    __table_args__ = (
        Index("ix_job_params_number", "tenant_id", "name", "number", "job_id"),
        Index("ix_job_params_text", "tenant_id", "name", "text", "job_id"),
    )

    number: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(String(200))


class JobMetric(JobValue, Base):
    """One logged metric of a job: its value at the last epoch that logged it (`final`, at `last_epoch`) and its
    best value (min or max by its name, app/core/run_metrics.py) with that epoch; kept by the worker in the
    transaction that records each epoch. An evaluate job's metrics have no epochs. Indexed per tenant and name
    so that a list sorts by either value (`?sort=-metrics.val_accuracy.best`)."""

    __tablename__ = "job_metrics"
    __table_args__ = (
        Index("ix_job_metrics_best", "tenant_id", "name", "best", "job_id"),
        Index("ix_job_metrics_final", "tenant_id", "name", "final", "job_id"),
    )

    final: Mapped[float | None] = mapped_column(Float)
    best: Mapped[float | None] = mapped_column(Float)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    last_epoch: Mapped[int | None] = mapped_column(Integer)


# The webhooks', the sweeps' and the registry's tables, in modules of their own, are part of this metadata wherever
# the tables are loaded.
from app.core.registry_tables import (  # noqa: E402, F401
    ModelAlias,
    ModelVersion,
    ModelVersionArtifact,
    ModelVersionExport,
    RegisteredModel,
)
from app.core.sweep_tables import Sweep, SweepFailedAsk, SweepTrial  # noqa: E402, F401
from app.core.webhook_tables import PENDING, Webhook, WebhookDelivery  # noqa: E402, F401
