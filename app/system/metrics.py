"""Prometheus metrics (`GET /metrics`): what is counted, and how the fleet's jobs are read from SQL.

Request latency and upload bytes are counted by the API process as it serves. What the workers do is read
from SQL when /metrics is scraped, so any API process reports the whole fleet without a channel from the
workers: jobs by status and queue depth are counted then, and the durations of jobs and epochs that ended
since the last scrape are added to their histograms (counters start at zero when an API process starts, as
Prometheus expects of a restart).
"""

from __future__ import annotations

import threading
from datetime import timedelta

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from app.core.database import get_sessionmaker
from app.core.sql import ask
from app.core.statuses import JOB_STATUSES
from app.core.tables import utcnow
from app.system import repository

REQUEST_SECONDS = Histogram("kerasd_http_request_duration_seconds", "API request latency, by route template",
                            ["method", "route", "status"])
UPLOAD_BYTES = Counter("kerasd_upload_bytes", "Bytes received in accepted uploads", ["kind"])
JOB_SECONDS = Histogram("kerasd_job_duration_seconds", "From a job's last start to its end, for jobs ended "
                        "since this API process started", ["kind", "status"],
                        buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, float("inf")))
EPOCH_SECONDS = Histogram("kerasd_epoch_duration_seconds", "Time between an epoch's record and the previous "
                          "epoch's, within one attempt (training plus per-epoch checkpointing; the first epoch "
                          "of an attempt, which includes building the model, is not counted)",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf")))

# Rows are read up to this long ago, so one committed a little after the time it carries is not skipped.
SCRAPE_LAG = timedelta(seconds=5)


class FleetCollector:
    """Counts from SQL at scrape time: jobs by status, queued jobs per queue."""

    def describe(self):
        # Described without a query, so registering this touches no database.
        return [GaugeMetricFamily("kerasd_jobs", "Jobs by status (every tenant)", labels=["status"]),
                GaugeMetricFamily("kerasd_queue_depth", "Queued jobs per queue", labels=["queue"])]

    def collect(self):
        jobs = GaugeMetricFamily("kerasd_jobs", "Jobs by status (every tenant)", labels=["status"])
        depth = GaugeMetricFamily("kerasd_queue_depth", "Queued jobs per queue", labels=["queue"])
        with get_sessionmaker()() as session:
            by_status = ask(session, repository.jobs_by_status())
            for status in JOB_STATUSES:
                jobs.add_metric([status], by_status.get(status, 0))
            for queue, count in ask(session, repository.queue_depths()).items():
                depth.add_metric([queue], count)
        yield jobs
        yield depth


class DurationScanner:
    """Adds the jobs and epochs that ended since the last scrape to their histograms."""

    def __init__(self) -> None:
        self._since = utcnow()
        self._lock = threading.Lock()

    def scan(self) -> None:
        with self._lock, get_sessionmaker()() as session:
            until = utcnow() - SCRAPE_LAG
            if until <= self._since:
                return
            ended = ask(session, repository.ended_jobs(since=self._since, until=until))
            for kind, status, started, finished in ended:
                JOB_SECONDS.labels(kind=kind, status=status).observe(max(0.0, (finished - started).total_seconds()))
            epochs = ask(session, repository.ended_epochs(since=self._since, until=until))
            for this, before in epochs:
                EPOCH_SECONDS.observe(max(0.0, (this - before).total_seconds()))
            self._since = until


REGISTRY.register(FleetCollector())
durations = DurationScanner()
