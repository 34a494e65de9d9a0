"""Finished runs written straight through the repositories, as the API stores a submission and the worker records
its epochs (the metric summaries come from the worker's own path): many runs in a moment, for the lists' and
comparisons' tests and bench/compare.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any


def tenant_and_model(session, prefix: str = "runs") -> tuple[str, str]:
    """A new tenant (no keys) and a model of it."""
    from app.core.tables import Tenant

    tenant = Tenant(name=f"{prefix}-{uuid.uuid4().hex[:8]}")
    session.add(tenant)
    session.flush()
    return tenant.id, model_of(session, tenant.id)


def model_of(session, tenant_id: str) -> str:
    from app.core.tables import ModelSpec

    model = ModelSpec(tenant_id=tenant_id, name="m", spec={}, keras_config={}, summary={})
    session.add(model)
    session.flush()
    return model.id


def insert_run(session, tenant_id: str, model_id: str, *, name: str | None = None, tags: Sequence[str] = (),
               params: dict[str, Any] | None = None, epochs: Sequence[dict[str, Any]] = (),
               status: str = "succeeded", kind: str = "fit", evaluation: dict[str, float] | None = None) -> str:
    """A finished job with these params, whose worker recorded these epochs' logs (epoch 0, 1, ...)."""
    from app.core.repositories import jobs as worker_questions
    from app.experiments import service as experiments
    from app.jobs import repository

    tags = sorted(set(tags))
    params = dict(params or {})
    job = repository.insert_job(session, tenant_id=tenant_id, kind=kind, status="running", model_id=model_id,
                                queue="runs", priority=5, max_attempts=3, attempt=1, name=name, tags=tags,
                                params=params, request={"kind": kind, "submitted": {"kind": kind}})
    experiments.record_submission(session, job_id=job.id, tenant_id=tenant_id, tags=tags, params=params)
    for epoch, logs in enumerate(epochs):
        worker_questions.record_epoch(session, job_id=job.id, epoch=epoch, attempt=1, logs=logs)
    result = {"evaluation": {"metrics": evaluation, "list": list(evaluation.values())}} if evaluation else None
    worker_questions.end_job(session, job_id=job.id, status=status, result=result, error=None)
    return job.id
