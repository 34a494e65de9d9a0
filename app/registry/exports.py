"""Exports of a registered model version (DESIGN.md §16): each an export job (app/core/contract.py, kind `export`)
that a worker runs with Keras's own `model.export`, then verifies with the format's own runtime against Keras's
predictions of a sample of the user's rows (workers/model_exports.py). The caller owns the commit and sends the
job after it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.contract import EXPORT_VERSION, JobRequest
from app.core.queue import queue_for
from app.core.quotas import check_queued, lock_tenant
from app.core.sql import ask
from app.core.tables import Job
from app.jobs import repository as jobs
from app.jobs.data import ArrayRef
from app.jobs.inputs import resolve_ref
from app.jobs.shapes import check_data_shapes
from app.models.service import get_model
from app.registry import repository
from app.registry.references import weights_of
from app.registry.service import version_by_path

# What each format's runtime must match Keras's predict within (largest absolute difference, float32): SavedModel
# and ONNX run the same float32 kernels' arithmetic; LiteRT's own kernels (and XNNPACK) may fuse and reorder more.
TOLERANCES = {"tf_saved_model": 1e-5, "onnx": 1e-5, "litert": 1e-4}


def create_export(session: Session, *, tenant_id: str, name: str, version: str, format: str,
                  sample: ArrayRef | None, max_attempts: int, queue_base: str) -> Job:
    """The export job of the tenant's version, queued in the caller's transaction, and its tie to the version.
    Without a sample the worker generates rows from the model's inputs."""
    model, found = version_by_path(session, tenant_id=tenant_id, name=name, version=version)
    data: dict[str, Any] = {}
    if sample is not None:
        data = {"x": resolve_ref(session, sample, "sample", tenant_id=tenant_id)}
        check_data_shapes(get_model(session, tenant_id=tenant_id, model_id=found.model_id).summary, data, None,
                          field="sample")
    lock_tenant(session, tenant_id)
    check_queued(session, tenant_id)
    queue = queue_for(queue_base, 0)
    directory = f"{model.name}/{found.version}"
    stored = JobRequest(
        version=EXPORT_VERSION, kind="export", weights=weights_of(session, model=model, version=found), data=data,
        arguments={"format": format, "directory": directory, "tolerance": TOLERANCES[format]}, queue=queue,
        submitted={"export": {"registered_model": model.name, "version": found.version, "format": format,
                              "sample": sample.model_dump(mode="json", exclude_none=True) if sample else None}},
    ).model_dump(mode="json")
    job = jobs.insert_job(session, tenant_id=tenant_id, kind="export", status="queued", model_id=found.model_id,
                          queue=queue, priority=5, max_attempts=max_attempts, name=f"export {directory} {format}",
                          notes=None, tags=[], params={}, request=stored)
    repository.insert_export(session, job_id=job.id, version_id=found.id, format=format)
    return job


def exports_of(session: Session, *, tenant_id: str, name: str, version: str) -> tuple[Any, list[Any]]:
    """(the version, its exports with their jobs' state) of the tenant's version."""
    _model, found = version_by_path(session, tenant_id=tenant_id, name=name, version=version)
    return found, ask(session, repository.exports_of(version_id=found.id))
