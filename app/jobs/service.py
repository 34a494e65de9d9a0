"""Jobs: a validated request stored in SQL, then queued; status, history, artifacts, cancel and retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.core.contract import BACKEND_VERSION, DEFAULT_ARTIFACTS, JobRequest
from app.core.errors import Problem, found, not_found
from app.core.queue import queue_for
from app.core.quotas import check_queued, lock_tenant
from app.core.settings import get_settings
from app.core.sql import ask
from app.core.statuses import TERMINAL_STATUSES
from app.core.tables import Job
from app.core.webhooks import record_job_end
from app.experiments import service as experiments
from app.experiments.schemas import tag_list
from app.jobs import feasibility, repository
from app.jobs.compile_checks import check_compile
from app.jobs.inputs import check_same_rows, resolve_input
from app.jobs.schemas import CompileSpec, JobCreate
from app.jobs.shapes import check_data_shapes
from app.models.service import catalog_of, get_model
from app.registry.references import starting_weights
from app.specchecker.keras_names import keras_object
from app.specchecker.pool import SpecChecker
from app.weights.service import owned_weights

DATA_ARGUMENTS = {"x", "y", "sample_weight", "validation_data"}


# --- compile ---------------------------------------------------------------------------------------

def _object_or_per_output(value: Any, module: str) -> Any:
    """A loss/metric may be one object, or one per output (a list, or a dict by output name)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_object_or_per_output(item, module) for item in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {name: _object_or_per_output(item, module) for name, item in value.items()}
    return keras_object(value, module)


def _optimizer(value: Any) -> Any:
    optimizer = keras_object(value, "keras.optimizers")
    # A learning rate may be a schedule object; Keras finds it only with its module named.
    if isinstance(optimizer, dict):
        rate = optimizer.get("config", {}).get("learning_rate")
        if isinstance(rate, dict) and "class_name" in rate:
            optimizer["config"]["learning_rate"] = keras_object(rate, "keras.optimizers.schedules")
    return optimizer


def compile_document(spec: CompileSpec) -> dict[str, Any]:
    return {
        "optimizer": _optimizer(spec.optimizer),
        "loss": _object_or_per_output(spec.loss, "keras.losses"),
        "metrics": _object_or_per_output(spec.metrics, "keras.metrics"),
        "loss_weights": spec.loss_weights,
        "weighted_metrics": _object_or_per_output(spec.weighted_metrics, "keras.metrics"),
        "jit_compile": spec.jit_compile,
        "steps_per_execution": spec.steps_per_execution,
        "run_eagerly": spec.run_eagerly,
    }


# --- where the model and its starting weights come from ---------------------------------------------

def weights_artifact(session: Session, job_id: str, field: str, *, tenant_id: str) -> dict[str, Any]:
    source = repository.get_job(session, tenant_id=tenant_id, job_id=job_id)
    if source is None:
        raise Problem(422, "Unknown Job", f"{field}: no job with id {job_id!r}.", field=field)
    artifact = ask(session, repository.artifact(job_id=job_id, name="weights.h5"))
    if artifact is None:
        raise Problem(409, "No Trained Weights", f"{field}: job {job_id} is {source.status} and has no trained "
                      "weights yet; wait for it to succeed (or use a job that did).", field=field)
    # The trained architecture too: a model created without an input shape is built only by its first fit,
    # and its weights load only into that built architecture.
    architecture = ask(session, repository.artifact(job_id=job_id, name="architecture.json"))
    return {"sha256": artifact.blob_sha256, "format": "weights.h5", "from": f"job {job_id}",
            "architecture_sha256": architecture.blob_sha256 if architecture is not None else None}


def model_source(session: Session, request: JobCreate, *,
                 tenant_id: str) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """The model id, the weights to start from (or None for a fresh initialization), and the compile document of
    the source job or version (an evaluate job reuses it); each only from the tenant's own rows."""
    reused_compile = None
    weights = None
    model_id = request.model_id
    if request.source_job_id is not None:
        source_job = repository.get_job(session, tenant_id=tenant_id, job_id=request.source_job_id)
        if source_job is None:
            raise Problem(422, "Unknown Job", f"source_job_id: no job with id {request.source_job_id!r}.",
                          field="source_job_id")
        if model_id is not None and model_id != source_job.model_id:
            raise Problem(422, "Conflicting Model", f"model_id {model_id} is not the model of source job "
                          f"{source_job.id} ({source_job.model_id}); give one or the other.", field="model_id")
        model_id = source_job.model_id
        weights = weights_artifact(session, source_job.id, "source_job_id", tenant_id=tenant_id)
        reused = JobRequest.model_validate(source_job.request).compile if request.kind == "evaluate" else None
        reused_compile = reused.model_dump(mode="json") if reused is not None else None
    if request.model_version is not None:
        # Resolved here, once: the job's contract names the version's own blobs, whatever its alias does next.
        weights, version = starting_weights(session, tenant_id=tenant_id, text=request.model_version,
                                            field="model_version")
        if model_id is not None and model_id != version.model_id:
            raise Problem(422, "Conflicting Model", f"model_id {model_id} is not the model of {request.model_version} "
                          f"({version.model_id}); give one or the other.", field="model_id")
        model_id = version.model_id
        reused_compile = version.lineage.get("compile")
    model = get_model(session, tenant_id=tenant_id, model_id=model_id)
    if request.initial_weights is not None:
        if request.initial_weights.job_id is not None:
            weights = weights_artifact(session, request.initial_weights.job_id, "initial_weights.job_id",
                                       tenant_id=tenant_id)
        elif request.initial_weights.model_version is not None:
            weights, _version = starting_weights(session, tenant_id=tenant_id, field="initial_weights.model_version",
                                                 text=request.initial_weights.model_version)
        else:
            upload = owned_weights(session, tenant_id=tenant_id, weights_id=request.initial_weights.weights_id)
            if upload is None:
                raise Problem(422, "Unknown Weights", f"initial_weights.weights_id: no uploaded weights with id "
                              f"{request.initial_weights.weights_id!r}; upload with POST /v1/weights.",
                              field="initial_weights.weights_id")
            weights = {"sha256": upload.blob_sha256, "format": "weights.h5", "from": f"upload {upload.id}"}
    if weights is None and model.weights_sha256 is not None:
        # A model created from an uploaded .keras/.h5 starts from the weights that file carried.
        weights = {"sha256": model.weights_sha256, "format": model.weights_format, "from": "the model's upload"}
    return model_id, weights, reused_compile


# --- create ----------------------------------------------------------------------------------------

def _data_and_arguments(session: Session, request: JobCreate, *,
                        tenant_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = getattr(request, request.kind)
    field = request.kind
    data = {name: resolve_input(session, getattr(spec, name), f"{field}.{name}", tenant_id=tenant_id)
            for name in DATA_ARGUMENTS if hasattr(spec, name)}
    data = {name: value for name, value in data.items() if value is not None}
    check_same_rows({k: v for k, v in data.items() if k != "validation_data" and "pipeline" not in (v or {})},
                    field)
    arguments = spec.model_dump(mode="json", exclude=DATA_ARGUMENTS | {"verbose"})
    if arguments.get("class_weight") and "sample_weight" in data:
        raise Problem(422, "Invalid Arguments", "Keras cannot use class_weight and sample_weight at the same "
                      "time: fold the class weights into sample_weight, or drop one.", field=f"{field}.class_weight")
    if isinstance(data["x"], dict) and "pipeline" in data["x"]:
        # Keras's rules for a tf.data input: the dataset yields (x, y[, sample_weight]) in batches itself.
        for name in ("y", "sample_weight"):
            if name in data:
                raise Problem(422, "Invalid Arguments", f"{field}.{name} must be absent when {field}.x is a "
                              "pipeline: the pipeline yields (x, y, sample_weight) itself, as with tf.data.",
                              field=f"{field}.{name}")
        for name in ("batch_size", "validation_split"):
            if arguments.get(name):
                raise Problem(422, "Invalid Arguments", f"{field}.{name} does not apply to a pipeline: batch "
                              "it with a 'batch' op, and give validation_data as its own pipeline.",
                              field=f"{field}.{name}")
        # Keras ignores fit's shuffle for a dataset (and warns): a pipeline shuffles with its own op.
        arguments.pop("shuffle", None)
    return data, arguments


def create_job(session: Session, *, tenant_id: str, request: JobCreate, checker: SpecChecker, max_attempts: int,
               queue_base: str, max_waiting_gpus: int = 0,
               live_workers: Callable[[], list[dict[str, Any]]] = list, trial: dict[str, Any] | None = None,
               trial_params: dict[str, Any] | None = None, backends_seen: Callable[[], dict[str, bool]] = dict,
               default_backend: str | None = None) -> Job:
    """Check and store a job (the caller commits, then queues it). `trial`: the sweep trial it is (a client sweep's
    trial, app/sweeps/service.py), with the values the sweep chose for it (`trial_params`) among its params.
    `backends_seen` says which Keras backends the workers seen on this queue run (with TensorFlow or not); empty, as
    for the points of a sweep checked after its base job was, the backend is not checked against them."""
    backend = request.backend or default_backend or get_settings().job_backend
    feasibility.check_ends(request)
    feasibility.check_gpus(request.resources.gpus, queue_base=queue_base, max_waiting=max_waiting_gpus,
                           live_workers=live_workers)
    feasibility.check_backend(request, backend=backend, seen=backends_seen)
    if request.callbacks:
        feasibility.check_callbacks(request, catalog_of(checker))
    model_id, weights, reused_compile = model_source(session, request, tenant_id=tenant_id)
    data, arguments = _data_and_arguments(session, request, tenant_id=tenant_id)
    compile_args = None
    if request.compile is not None:
        compile_args = compile_document(request.compile)
        check_compile(checker, compile_args, tenant_id=tenant_id)
    elif request.kind == "evaluate":
        compile_args = reused_compile
        if compile_args is None:
            raise Problem(422, "Missing Compile", "evaluate needs a loss: give 'compile', or a source_job_id (or "
                          "model_version) of a fit job whose compile arguments it reuses.", field="compile")
    summary = get_model(session, tenant_id=tenant_id, model_id=model_id).summary
    check_data_shapes(summary, data, compile_args, field=request.kind)
    artifacts = list(request.artifacts or DEFAULT_ARTIFACTS) if request.kind == "fit" else []
    gpus = request.resources.gpus
    distribution = request.distribution or ("mirrored" if gpus > 1 else None)
    # Last, and held only until the route's commit: the tenant's submissions queue up here one at a time, so
    # two at once cannot both take the last free place in the tenant's queued-jobs quota.
    lock_tenant(session, tenant_id)
    check_queued(session, tenant_id)
    queue = queue_for(queue_base, gpus, backend)
    stored = JobRequest(
        version=BACKEND_VERSION, backend=backend, kind=request.kind, weights=weights, compile=compile_args,
        data=data, arguments=arguments,
        callbacks=[c.model_dump(mode="json") for c in request.callbacks], seed=request.seed,
        artifacts=artifacts, queue=queue, priority=request.priority,
        mixed_precision=request.mixed_precision, distribution=distribution,
        time_limit_s=request.time_limit_s, tuning=request.tuning_request(),
        submitted=request.model_dump(mode="json", exclude_none=True),
        **({"trial": trial} if trial is not None else {})).model_dump(mode="json")
    params = {**experiments.submission_params(stored, summary), **(trial_params or {})}
    tags = tag_list(request.tags)
    job = repository.insert_job(
        session, tenant_id=tenant_id, kind=request.kind, status="queued", model_id=model_id, queue=queue,
        priority=request.priority, max_attempts=min(request.max_attempts or max_attempts, max_attempts),
        name=request.name, notes=request.notes, tags=tags, params=params, request=stored,
        **({"sweep_id": trial["sweep_id"]} if trial is not None else {}))
    experiments.record_submission(session, job_id=job.id, tenant_id=tenant_id, tags=tags, params=params)
    return job


# --- read ------------------------------------------------------------------------------------------

def get_job(session: Session, *, tenant_id: str, job_id: str) -> Job:
    return found(repository.get_job(session, tenant_id=tenant_id, job_id=job_id), "job", job_id)


def job_answer(session: Session, *, tenant_id: str, job_id: str) -> Any:
    """The job as the API answers it (a JobOut), in the caller's transaction."""
    answer = ask(session, repository.job_document(tenant_id=tenant_id, job_id=job_id))
    if answer is None:
        raise not_found("job", job_id)
    return answer


def artifacts_of(session: Session, *, tenant_id: str, job_id: str) -> list[Any]:
    get_job(session, tenant_id=tenant_id, job_id=job_id)
    return ask(session, repository.artifacts_of(job_id=job_id))


def get_artifact(session: Session, *, tenant_id: str, job_id: str, name: str) -> Any:
    get_job(session, tenant_id=tenant_id, job_id=job_id)
    artifact = ask(session, repository.artifact(job_id=job_id, name=name))
    if artifact is None:
        names = [a.name for a in ask(session, repository.artifacts_of(job_id=job_id))]
        raise Problem(404, "Not Found", f"Job {job_id} has no artifact {name!r}; it has {names}.")
    return artifact


# --- change ----------------------------------------------------------------------------------------

def delete_job(session: Session, *, tenant_id: str, job_id: str) -> None:
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job.status not in TERMINAL_STATUSES:
        raise Problem(409, "Job Active", f"Job {job_id} is {job.status}; cancel it first "
                      f"(POST /v1/jobs/{job_id}/cancel), then delete it.")
    repository.delete_job(session, job=job)


def cancel_job(session: Session, *, tenant_id: str, job_id: str) -> str:
    """Cancel now if queued ('cancelled'), or ask the worker to stop at its next batch ('requested')."""
    get_job(session, tenant_id=tenant_id, job_id=job_id)
    if repository.cancel_queued(session, job_id=job_id):
        record_job_end(session, job_id=job_id, status="cancelled", public_url=get_settings().public_url)
        return "cancelled"
    if not repository.ask_cancel(session, job_id=job_id):
        status = ask(session, repository.job_state(job_id=job_id)).status
        raise Problem(409, "Job Finished", f"Job {job_id} already ended {status}; there is nothing to cancel.")
    return "requested"


def retry_job(session: Session, *, tenant_id: str, job_id: str, max_attempts: int) -> Job:
    """Queue a failed or cancelled job again, as a new attempt from the start."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job.status not in ("failed", "cancelled"):
        hint = "submit a new job to train again" if job.status == "succeeded" else "wait for it to end"
        raise Problem(409, "Job Not Retryable", f"Job {job_id} is {job.status}; only failed or cancelled jobs "
                      f"can be retried ({hint}).")
    lock_tenant(session, tenant_id)
    check_queued(session, tenant_id)
    repository.clear_outputs(session, job_id=job_id)
    repository.requeue(session, job=job, more_attempts=max_attempts)
    return job


def fail_unqueued(session: Session, *, job: Job, reason: str) -> None:
    """A job whose message could not be sent must not sit in `queued` forever."""
    repository.fail(session, job=job, error={"type": "QueueUnavailable", "message": reason})
    record_job_end(session, job_id=job.id, status="failed", public_url=get_settings().public_url)
