"""The one settings object of kerasd (DESIGN.md §11): every knob is an environment variable `KERASD_*`."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KERASD_", extra="ignore")

    # Where the embedded default keeps its SQLite file, Redis files and worker cache.
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".kerasd")
    # Empty means: SQLite inside data_dir (the embedded default).
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Celery's broker; empty means redis_url.
    broker_url: str = ""
    # The Celery queue fit jobs go to (the GPU/CPU split is its own issue).
    queue: str = "kerasd"
    # The Keras backend of a job that names none (`tensorflow`, `jax` or `torch`); empty: KERAS_BACKEND where it is
    # set to one of those (as `kerasd up --backend` sets it), else tensorflow. Its workers serve its queues.
    default_backend: Literal["", "tensorflow", "jax", "torch"] = ""

    # Blobs (datasets, artifacts) are stored in SQL as rows of this many bytes.
    chunk_bytes: int = 1024 * 1024
    max_upload_bytes: int = 2 * 1024**3
    max_arrays_per_file: int = 256
    max_array_rank: int = 8
    max_csv_columns: int = 10_000
    # An .npz member may expand to at most this many bytes, at most this many times its compressed size
    # (deflate itself cannot pass ~1032:1; a bomb's members claim far more), checked from the zip directory
    # before any byte is expanded; only stored and deflate members are accepted (bz2/lzma expand at ~14 s
    # of CPU per 2 GB). A dataset is charged to its tenant's quota at its expanded size.
    max_npz_expanded_bytes: int = 8 * 1024**3
    max_npz_compression_ratio: float = 1100.0

    # Spec checker: sandboxed processes that build Keras models from untrusted specs.
    spec_checker_processes: int = 2
    spec_checker_memory_mb: int = 4096
    spec_checker_timeout_s: float = 60.0
    # Spec checks a tenant may have in the checker at once (429 + Retry-After beyond); checks waiting for a
    # sandbox, all tenants together, beyond which a check is refused at once (503 + Retry-After); and how long a
    # check waits for a sandbox before it is answered 503. Waiting checks take turns across tenants.
    spec_checks_per_tenant: int = 4
    spec_checker_max_waiting: int = 16
    spec_checker_wait_s: float = 30.0
    max_model_params: int = 50_000_000
    # Server-side plugins (DESIGN.md §4): comma-separated modules that register Keras serializable layers
    # and models (`register_keras_serializable`). Specs may name only what these register; empty: none.
    plugins: str = "kerasd_plugins.seed"

    # Progress events (one Redis Stream per job).
    event_stream_maxlen: int = 10_000
    event_stream_ttl_s: int = 7 * 24 * 3600
    batch_event_interval_s: float = 0.5
    sse_heartbeat_s: float = 15.0
    # An SSE connection is closed after this long with a `retry:` hint; the client resumes with
    # Last-Event-ID. Keeps proxies from cutting streams at random and spreads long-lived connections.
    sse_max_connection_s: float = 300.0
    # How long an EventSource waits before it reconnects (the SSE `retry:` field).
    sse_retry_ms: int = 1000

    # Jobs.
    lease_seconds: int = 120
    # GPUs this worker process owns (set by `kerasd worker --gpus`); it serves the queues of jobs that fit.
    worker_gpus: int = 0
    # How often each worker looks for jobs whose lease expired (their worker was lost).
    reaper_interval_s: float = 15.0
    # How often each worker deletes the blobs nothing refers to any more (deleted datasets, replaced
    # checkpoints; 0: never), and how old an unreferenced blob must be before it goes (app/core/blob_gc.py).
    blob_gc_interval_s: float = 3600.0
    blob_gc_grace_s: float = 3600.0
    # A whole-training-state checkpoint every this many epochs (0: none); the latest is kept.
    checkpoint_every_epochs: int = 1
    # Redis redelivers an unacknowledged job message after this long: longer than the longest job.
    broker_visibility_timeout_s: int = 24 * 3600
    # Seconds between sweeps for such messages; empty: kombu's default (about 100 s).
    broker_restore_interval_s: int | None = None
    max_attempts: int = 3
    # An attempt of a job running longer than this is stopped by its worker at the end of a batch and the job
    # failed with that reason (its checkpoint and weights are kept), whatever the job's own time_limit_s. 0: none.
    max_job_time_s: float = 86400.0
    # Where no worker has registered yet, a job may ask for at most this many GPUs (beyond: 422 at submit).
    max_waiting_job_gpus: int = 8
    # A worker retries database work that failed with "database is locked" or a lost connection for this long
    # before it gives the job up.
    worker_db_retry_s: float = 60.0
    # With SQLite (the embedded default), how long a writer waits for the one write lock before its statement
    # fails with "database is locked" (which a worker then retries, above).
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)
    # Execution tuning of fit jobs (workers/tuning.py): steps per execution are chosen so that one lasts about
    # this long; an XLA trial is made only for fits estimated at least this long.
    tuning_execution_s: float = 0.1
    tuning_xla_trial_min_fit_s: float = 120.0
    # The worker process's allocator (app/commands/allocator.py): the system's malloc, or jemalloc where the machine
    # has libjemalloc. Not jemalloc by default: it maps memory MAP_NORESERVE, so a model larger than the host
    # is OOM-killed with the worker instead of failing its job with "resource_exhausted".
    worker_malloc: Literal["jemalloc", "system"] = "system"
    # The worker process's niceness (0-19; 0: as started). On a host where the API shares the CPU with training
    # (`kerasd up` and compose's CPU workers set 10), the API answers first and training takes what is left.
    worker_nice: int = Field(default=0, ge=0, le=19)
    # Worker-local copies of datasets, by sha256; empty means data_dir / "cache".
    worker_cache_dir: Path | None = None
    # The cache holds at most this many bytes; the least recently used datasets leave first.
    worker_cache_bytes: int = 20 * 1024**3

    # Tenants and API keys (app/http/auth.py). "required": every /v1 request needs a key. "localhost-open": a
    # request without a key from this machine acts as the tenant 'default' (the embedded default's way);
    # allowed only while the API binds a loopback address. Empty: localhost-open when the API binds a
    # loopback address, required for any other.
    auth: Literal["", "required", "localhost-open"] = ""
    # The address the API binds; `kerasd api --host` sets it. Unknown (empty) counts as not loopback.
    api_host: str = ""
    # Quotas per tenant; a tenant's own value (`kerasd admin set-quota`) overrides each. 0: no limit.
    max_running_jobs_per_tenant: int = 16
    max_queued_jobs_per_tenant: int = 1000
    max_stored_bytes_per_tenant: int = 200 * 1024**3
    # Requests a second, sustained, and the burst a tenant may send at once (a token bucket in Redis).
    requests_per_s_per_tenant: float = 50.0
    request_burst_per_tenant: int = 500
    # API keys SQL accepted are kept in each API process this long (app/tenants/key_cache.py); a revocation reaches
    # every process at its next request through Redis, and this bounds it when Redis was away. 0: no cache.
    api_key_cache_s: float = 10.0
    # A worker handed a job message while every queued job's tenant is at its running-jobs quota sends the
    # message back after this long (workers/scheduling.py), so no job is left without one.
    scheduler_retry_s: float = 2.0

    # Limits on every request body (app/http/limits.py); uploads have max_upload_bytes instead.
    max_request_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = 64
    max_json_items: int = 100_000
    max_json_string_chars: int = 1024 * 1024

    # Bounded work per request (app/http/admission.py), each per API process. Failed authentications per client
    # address: a bucket of this many, refilled at this rate; past it, a 429 before the key is looked up.
    auth_failures_per_s_per_address: float = 1.0
    auth_failure_burst: int = 20
    # Dataset uploads one tenant may send at once, and its live event streams (0: no limit); event streams in the
    # whole process, below the async Redis pool's size (redis_async_connections), so a stream is refused with
    # 503 and Retry-After before its 200 instead of being cut after it.
    max_uploads_per_tenant: int = 4
    max_streams_per_tenant: int = 100
    max_streams_per_process: int = 200
    redis_async_connections: int = 256
    # A request body must arrive at min_body_bytes_per_s or faster once body_grace_s have passed, with no pause over
    # body_idle_timeout_s, or it is answered 408 and its connection closed (0 turns each off).
    min_body_bytes_per_s: int = 16 * 1024
    body_grace_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    # YAML model bodies are parsed by libyaml, one at a time per process, and at most this many bytes.
    max_yaml_bytes: int = 1024 * 1024

    # Webhooks (app/core/webhooks.py; sent by workers/webhooks.py). A hook's URL must resolve to public addresses only
    # unless this is true: a tenant's URL is fetched from inside the network (SSRF: cloud metadata at 169.254.169.254,
    # databases, admin ports). `kerasd up` bound to a loopback address sets it, so hooks on the same machine work.
    webhook_allow_private: bool = False
    # Each POST gives up after this long (connect, and each read); a receiver should answer at once and work later.
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Attempts per delivery, on network errors, 408, 429 and 5xx answers; waits grow exponentially (with jitter)
    # from webhook_backoff_s to at most webhook_backoff_max_s between attempts.
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff_s: float = Field(default=1.0, gt=0)
    webhook_backoff_max_s: float = Field(default=30.0, gt=0)
    # How often each worker's sender looks for due deliveries (a job ending on the same worker wakes it at once),
    # and how many it sends at once (one slow receiver does not hold up the others).
    webhook_poll_s: float = Field(default=2.0, gt=0)
    webhook_concurrency: int = Field(default=4, ge=1, le=64)
    # The API's address as receivers reach it (https://kerasd.example.com): a webhook's links are absolute with it,
    # paths without it.
    public_url: str = ""

    # Log lines as JSON objects (with request and job ids) or as plain text.
    log_format: Literal["json", "text"] = "json"

    @property
    def job_backend(self) -> str:
        """The backend of a job that names none (default_backend resolved)."""
        if self.default_backend:
            return self.default_backend
        named = os.environ.get("KERAS_BACKEND", "")
        return named if named in ("tensorflow", "jax", "torch") else "tensorflow"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'kerasd.db'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def resolved_cache_dir(self) -> Path:
        return self.worker_cache_dir or self.data_dir / "cache"

    @property
    def plugin_modules(self) -> list[str]:
        return [name.strip() for name in self.plugins.split(",") if name.strip()]


@functools.lru_cache
def get_settings() -> Settings:
    return Settings()
