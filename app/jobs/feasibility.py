"""Jobs refused at submit because they could never end or never start, and callbacks checked as the worker will.

- A pipeline that repeats forever (`repeat` with count null or -1) makes an epoch that never ends unless
  `steps_per_epoch` (fit), `validation_steps` (its validation pipeline) or `steps` (evaluate, predict) bounds it.
- A job asking for more GPUs than any worker has would wait forever: it is accepted up to the GPU count of the
  largest worker seen alive on this queue, or up to KERASD_MAX_WAITING_JOB_GPUS (a GPU worker may join later).
- A job for a Keras backend no worker on this queue has been seen running would wait forever: refused, with the
  backends that have been seen (before any worker was ever seen, every job may wait for one). What needs TensorFlow
  (tf.data pipelines, SavedModel artifacts, the TensorBoard callback) is refused on a backend none of whose workers
  seen has TensorFlow; multi-GPU distribution (tf.distribute) on any backend but TensorFlow.
- A LearningRateScheduler's schedule is a serialized Keras object, walked against the same allowlist the worker
  walks it with (workers/callbacks.py), so a module reference is a 422 now and not a failed job later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.errors import Problem
from app.core.queue import queue_for
from app.jobs.schemas import JobCreate
from app.models.service import walk
from app.specchecker.keras_names import keras_object
from app.specchecker.safety import Catalog


def _endless(value: Any) -> bool:
    pipeline = getattr(value, "pipeline", None)
    return pipeline is not None and any(op.op == "repeat" and op.count in (None, -1) for op in pipeline.ops)


def check_ends(request: JobCreate) -> None:
    """422 for a pipeline that repeats forever where nothing bounds the steps it is read for."""
    spec = getattr(request, request.kind)
    bound = "steps_per_epoch" if request.kind == "fit" else "steps"
    checks = [("x", bound)]
    if request.kind == "fit":
        checks.append(("validation_data", "validation_steps"))
    for field, steps in checks:
        if _endless(getattr(spec, field, None)) and getattr(spec, steps, None) is None:
            raise Problem(
                422,
                "Endless Job",
                f"{request.kind}.{field} is a pipeline that repeats forever (a "
                f"'repeat' op with count null or -1), so its {'epoch' if steps != 'steps' else 'run'} "
                f"would never end: set {request.kind}.{steps} to the number of batches to read, or give "
                "the repeat a count.",
                field=f"{request.kind}.{steps}",
            )


def check_gpus(
    gpus: int, *, queue_base: str, max_waiting: int, live_workers: Callable[[], list[dict[str, Any]]]
) -> None:
    """422 when no worker seen has `gpus` GPUs and the count is above what may wait for one to join."""
    if gpus <= max_waiting:
        return
    counts = sorted({int(w.get("gpus") or 0) for w in live_workers() if w.get("queue") == queue_base})
    if counts and gpus <= counts[-1]:
        return
    seen = (
        f"the workers alive on this server have {', '.join(map(str, counts))} GPU(s)"
        if counts
        else "no worker is alive on this server"
    )
    raise Problem(
        422,
        "Unschedulable Job",
        f"resources.gpus is {gpus}, but {seen}, and a job may wait for at "
        f"most {max_waiting} GPUs (KERASD_MAX_WAITING_JOB_GPUS): it would never start. Ask for at most "
        f"{max(counts[-1] if counts else 0, max_waiting)}.",
        field="resources.gpus",
        worker_gpus=counts,
    )


def tensorflow_needs(request: JobCreate) -> list[str]:
    """What in the job needs TensorFlow importable on its worker, whatever the backend: for people."""
    spec = getattr(request, request.kind)
    needs = [
        f"{request.kind}.{field} (a tf.data pipeline)"
        for field in ("x", "validation_data")
        if getattr(getattr(spec, field, None), "pipeline", None) is not None
    ]
    if "savedmodel.zip" in (request.artifacts or ()):
        needs.append("the savedmodel.zip artifact (a TensorFlow SavedModel)")
    needs += [
        f"callbacks[{index}] (TensorBoard writes its logs with tf.summary)"
        for index, callback in enumerate(request.callbacks)
        if callback.class_name == "TensorBoard"
    ]
    return needs


def check_backend(request: JobCreate, *, backend: str, seen: Callable[[], dict[str, bool]]) -> None:
    """422 for a job on a backend no worker of this queue has been seen running, or one that cannot run it."""
    at = {"field": "backend"} if request.backend is not None else {}
    named = "the job's backend" if at else "the server's default backend (KERASD_DEFAULT_BACKEND)"
    if backend != "tensorflow" and (request.distribution is not None or request.resources.gpus > 1):
        raise Problem(
            422,
            "Backend Cannot Run Job",
            f"{named} is {backend}, and multi-GPU jobs are distributed "
            "with tf.distribute.MirroredStrategy, which needs the tensorflow backend: ask for "
            "backend 'tensorflow', or for at most one GPU.",
            field=at.get("field", "resources.gpus"),
        )
    found = seen()
    if not found:
        return  # no worker was ever seen here: the job waits for one (its status_message says so)
    if backend not in found:
        raise Problem(
            422,
            "Backend Unavailable",
            f"{named} is {backend}, but no worker running it has been seen on "
            f"this server; the workers seen run {', '.join(sorted(found))}. Name one of those as the "
            f"job's backend, or start a worker on {backend} (`kerasd worker --backend {backend}`).",
            backends=sorted(found),
            **at,
        )
    needs = tensorflow_needs(request) if backend != "tensorflow" else []
    if needs and not found[backend]:
        with_tf = sorted(name for name, has_tf in found.items() if has_tf)
        raise Problem(
            422,
            "Backend Cannot Run Job",
            f"{'; '.join(needs)} needs TensorFlow, and no worker on "
            f"the {backend} backend seen here has TensorFlow installed. Send arrays instead of a "
            "pipeline (Keras batches and shuffles them itself), leave out savedmodel.zip or the "
            f"TensorBoard callback, or run the job on a backend whose workers have TensorFlow "
            f"({', '.join(with_tf) or 'none seen'}).",
            backends=sorted(found),
            **at,
        )


def waiting_message(
    submitted: dict[str, Any], workers: list[dict[str, Any]], *, queue_base: str, default_backend: str
) -> str | None:
    """Why a queued job waits, when no live worker serves its queue (its backend with its GPUs); else None."""
    backend = submitted.get("backend") or default_backend
    gpus = int((submitted.get("resources") or {}).get("gpus") or 0)
    queue = queue_for(queue_base, gpus, backend)
    here = [w for w in workers if w.get("queue") == queue_base]
    if any(queue in (w.get("queues") or ()) for w in here):
        return None
    running = sorted({f"{w.get('backend')} with {w.get('gpus') or 0} GPU(s)" for w in here})
    alive = f"the live workers run {', '.join(running)}" if running else "no worker is alive"
    return (
        f"Waiting: no live worker runs the {backend} backend with {gpus or 'no'} GPU(s) or more, and {alive}. "
        f"The job starts when one does (`kerasd worker --backend {backend}`"
        + (f" on a machine with {gpus} GPU(s))." if gpus else ").")
    )


def check_callbacks(request: JobCreate, catalog: Catalog) -> None:
    """The schedule of each LearningRateScheduler walked as the worker walks it."""
    for index, callback in enumerate(request.callbacks):
        if callback.class_name == "LearningRateScheduler":
            document = keras_object(callback.config["schedule"], "keras.optimizers.schedules")
            walk(document, catalog, what=f"callbacks[{index}] (LearningRateScheduler) schedule")
