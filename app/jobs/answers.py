"""A job as the API answers it, built in one place from a row of app/jobs/repository.py's statements."""

from __future__ import annotations

import json
from typing import Any

from app.core.run_metrics import goal
from app.jobs.schemas import JobOut


def parse_json(value: Any) -> Any:
    # Drivers differ: psycopg decodes json values itself, sqlite3 hands back text.
    return json.loads(value) if isinstance(value, str | bytes) else value


def metrics_out(value: Any) -> dict[str, dict[str, Any]]:
    """{name: [final, best, best_epoch]} as the job statements aggregate job_metrics -> the answer's `metrics`."""
    summaries = parse_json(value) or {}
    return {name: {"final": final, "best": best, "best_epoch": best_epoch, "goal": goal(name)}
            for name, (final, best, best_epoch) in sorted(summaries.items())}


def job_out(job: Any, *, request: dict[str, Any], epochs: list[list[Any]], queue_position: int | None) -> JobOut:
    """The `JobOut` of a job row (with its `metrics` aggregated) and its epochs as [epoch, attempt, logs]."""
    keys = sorted({key for _epoch, _attempt, logs in epochs for key in logs})
    return JobOut(
        id=job.id, name=job.name, tags=parse_json(job.tags) or [], notes=job.notes, kind=job.kind,
        status=job.status, model_id=job.model_id, attempt=job.attempt,
        max_attempts=job.max_attempts, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, error=parse_json(job.error), queue_position=queue_position,
        cancel_requested_at=job.cancel_requested_at, request=request,
        history={key: [logs.get(key) for _epoch, _attempt, logs in epochs] for key in keys},
        epochs=[{"epoch": epoch, "attempt": attempt, **logs} for epoch, attempt, logs in epochs],
        result=parse_json(job.result), params=parse_json(job.params) or {}, metrics=metrics_out(job.metrics),
        sweep_id=job.sweep_id, links={"self": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events",
               "artifacts": f"/v1/jobs/{job.id}/artifacts", "model": f"/v1/models/{job.model_id}"},
    )
