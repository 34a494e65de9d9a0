"""Jobs refused at submit because they could never end or never start, and callbacks checked as the worker will.

- A pipeline that repeats forever (`repeat` with count null or -1) makes an epoch that never ends unless
  `steps_per_epoch` (fit), `validation_steps` (its validation pipeline) or `steps` (evaluate, predict) bounds it.
- A job asking for more GPUs than any worker has would wait forever: it is accepted up to the GPU count of the
  largest worker seen alive on this queue, or up to KERASD_MAX_WAITING_JOB_GPUS (a GPU worker may join later).
- A LearningRateScheduler's schedule is a serialized Keras object, walked against the same allowlist the worker
  walks it with (workers/callbacks.py), so a module reference is a 422 now and not a failed job later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.errors import Problem
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
            raise Problem(422, "Endless Job", f"{request.kind}.{field} is a pipeline that repeats forever (a "
                          f"'repeat' op with count null or -1), so its {'epoch' if steps != 'steps' else 'run'} "
                          f"would never end: set {request.kind}.{steps} to the number of batches to read, or give "
                          "the repeat a count.", field=f"{request.kind}.{steps}")


def check_gpus(gpus: int, *, queue_base: str, max_waiting: int,
               live_workers: Callable[[], list[dict[str, Any]]]) -> None:
    """422 when no worker seen has `gpus` GPUs and the count is above what may wait for one to join."""
    if gpus <= max_waiting:
        return
    counts = sorted({int(w.get("gpus") or 0) for w in live_workers() if w.get("queue") == queue_base})
    if counts and gpus <= counts[-1]:
        return
    seen = (f"the workers alive on this server have {', '.join(map(str, counts))} GPU(s)" if counts
            else "no worker is alive on this server")
    raise Problem(422, "Unschedulable Job", f"resources.gpus is {gpus}, but {seen}, and a job may wait for at "
                  f"most {max_waiting} GPUs (KERASD_MAX_WAITING_JOB_GPUS): it would never start. Ask for at most "
                  f"{max(counts[-1] if counts else 0, max_waiting)}.", field="resources.gpus",
                  worker_gpus=counts)


def check_callbacks(request: JobCreate, catalog: Catalog) -> None:
    """The schedule of each LearningRateScheduler walked as the worker walks it."""
    for index, callback in enumerate(request.callbacks):
        if callback.class_name == "LearningRateScheduler":
            document = keras_object(callback.config["schedule"], "keras.optimizers.schedules")
            walk(document, catalog, what=f"callbacks[{index}] (LearningRateScheduler) schedule")
