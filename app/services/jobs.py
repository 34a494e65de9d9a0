"""Jobs: a validated request stored in SQL, then queued; status, history and artifacts read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.problems import Problem, not_found
from app.schemas import ArrayRef, JobCreate
from app.services.models import checked, get_model
from app.spec_checker import SpecChecker
from app.specs import keras_object
from app.tables import TERMINAL_STATUSES, Artifact, Dataset, EpochLog, Job, utcnow


def _resolve(session: Session, ref: ArrayRef, field: str) -> dict[str, Any]:
    dataset = session.get(Dataset, ref.dataset_id)
    if dataset is None:
        raise Problem(422, "Unknown Dataset", f"{field}: no dataset with id {ref.dataset_id!r}; upload it "
                      "with POST /v1/datasets first.", field=field)
    names = [a["name"] for a in dataset.arrays]
    name = ref.array
    if name is None:
        if len(names) != 1:
            raise Problem(422, "Ambiguous Array", f"{field}: dataset {dataset.id} holds arrays {names}; "
                          "name one with 'array'.", field=field)
        name = names[0]
    info = next((a for a in dataset.arrays if a["name"] == name), None)
    if info is None:
        raise Problem(422, "Unknown Array", f"{field}: dataset {dataset.id} has no array {name!r}; it holds "
                      f"{names}.", field=field)
    return {"dataset_id": dataset.id, "array": name, "sha256": dataset.blob_sha256, "format": dataset.format,
            "shape": info["shape"], "dtype": info["dtype"]}


def _same_rows(arrays: dict[str, dict[str, Any]], first: str, second: str) -> None:
    if first in arrays and second in arrays:
        a, b = arrays[first], arrays[second]
        rows_a = a["shape"][0] if a["shape"] else None
        rows_b = b["shape"][0] if b["shape"] else None
        if rows_a != rows_b:
            raise Problem(422, "Mismatched Arrays", f"{first} has {rows_a} rows (shape {a['shape']}) but "
                          f"{second} has {rows_b} (shape {b['shape']}); they must have the same first "
                          "dimension.", field=second)


def resolve_arrays(session: Session, request: JobCreate) -> dict[str, dict[str, Any]]:
    """Every array the job reads, by the role Keras gives it, with the dataset's sha256 and shape."""
    fit = request.fit
    refs = {"fit.x": fit.x, "fit.y": fit.y}
    if fit.validation_data is not None:
        refs.update({"fit.validation_data.x": fit.validation_data.x, "fit.validation_data.y": fit.validation_data.y})
    arrays = {field: _resolve(session, ref, field) for field, ref in refs.items() if ref is not None}
    for field, info in arrays.items():
        if not info["shape"]:
            raise Problem(422, "Scalar Array", f"{field} is a scalar; Keras needs at least one dimension "
                          "(the samples).", field=field)
    _same_rows(arrays, "fit.x", "fit.y")
    _same_rows(arrays, "fit.validation_data.x", "fit.validation_data.y")
    return arrays


def compile_document(request: JobCreate) -> dict[str, Any]:
    spec = request.compile
    return {
        "optimizer": keras_object(spec.optimizer, "keras.optimizers"),
        "loss": keras_object(spec.loss, "keras.losses"),
        "metrics": [keras_object(m, "keras.metrics") for m in spec.metrics],
    }


def create_job(session: Session, *, request: JobCreate, checker: SpecChecker, max_attempts: int) -> Job:
    get_model(session, model_id=request.model_id)
    arrays = resolve_arrays(session, request)
    compile_args = compile_document(request)
    checked(checker, "check_compile", compile_args, what="compile arguments")
    fit = request.fit.model_dump(mode="json", exclude={"x", "y", "validation_data"})
    job = Job(kind=request.kind, status="queued", model_id=request.model_id, max_attempts=max_attempts,
              request={"compile": compile_args, "fit": fit, "arrays": arrays, "seed": request.seed,
                       "submitted": request.model_dump(mode="json")})
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def list_jobs(session: Session, *, status: str | None, limit: int, offset: int) -> tuple[list[Job], int]:
    query = select(Job)
    count = select(func.count()).select_from(Job)
    if status is not None:
        query, count = query.where(Job.status == status), count.where(Job.status == status)
    rows = session.scalars(query.order_by(Job.created_at.desc()).limit(limit).offset(offset))
    return list(rows), session.scalar(count)


def epochs_of(session: Session, *, job_id: str) -> list[EpochLog]:
    return list(session.scalars(select(EpochLog).where(EpochLog.job_id == job_id).order_by(EpochLog.epoch)))


def history_of(epochs: list[EpochLog]) -> dict[str, list[float | None]]:
    """Keras's History.history: each metric's values in epoch order."""
    keys = sorted({key for e in epochs for key in e.logs})
    return {key: [e.logs.get(key) for e in epochs] for key in keys}


def artifacts_of(session: Session, *, job_id: str) -> list[Artifact]:
    return list(session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)))


def get_artifact(session: Session, *, job_id: str, name: str) -> Artifact:
    get_job(session, job_id=job_id)
    artifact = session.get(Artifact, (job_id, name))
    if artifact is None:
        names = [a.name for a in artifacts_of(session, job_id=job_id)]
        raise Problem(404, "Not Found", f"Job {job_id} has no artifact {name!r}; it has {names}.")
    return artifact


def delete_job(session: Session, *, job_id: str) -> None:
    job = get_job(session, job_id=job_id)
    if job.status not in TERMINAL_STATUSES:
        raise Problem(409, "Job Active", f"Job {job_id} is {job.status}; only a finished, failed or cancelled "
                      "job can be deleted.")
    session.delete(job)


def fail_unqueued(session: Session, *, job: Job, reason: str) -> None:
    """A job whose message could not be sent must not sit in `queued` forever."""
    job.status = "failed"
    job.finished_at = utcnow()
    job.error = {"type": "QueueUnavailable", "message": reason}
