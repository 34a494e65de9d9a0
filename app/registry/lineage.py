"""A version's lineage, copied from its job at registration (DESIGN.md §16): the job and its attempts, the sweep, the
model spec, every dataset by sha256 with its arrays' shapes, the seed, the params and final metrics, the compile
document, the weights it started from, and the versions of what trained it (the worker's `trained_with`)."""

from __future__ import annotations

from typing import Any

from app.core.contract import JobRequest
from app.core.tables import Job
from app.jobs.inputs import arrays_in
from app.jobs.schemas import JobOut

JOB_FIELDS = ("id", "name", "tags", "status", "sweep_id", "max_attempts", "created_at", "started_at", "finished_at")


def datasets_read(stored_request: dict[str, Any]) -> list[dict[str, Any]]:
    """Each dataset the job read (by its file's sha256, in the order first read) and its arrays, with the
    argument each went to (x, y, validation_data.x, fit's pipeline.x ...)."""
    found: dict[str, dict[str, Any]] = {}
    for argument, array in arrays_in(stored_request.get("data") or {}):
        entry = found.setdefault(array["sha256"], {"sha256": array["sha256"], "dataset_id": array["dataset_id"],
                                                   "format": array["format"], "arrays": []})
        entry["arrays"].append({"argument": argument, "array": array["array"], "shape": array["shape"],
                                "dtype": array["dtype"]})
    return list(found.values())


def lineage_of(job: Job, answer: JobOut, *, model_name: str) -> dict[str, Any]:
    """The lineage document of a succeeded fit job (its row, and its answer as GET /v1/jobs/{id} gives it)."""
    request = JobRequest.model_validate(job.request)
    result = answer.result or {}
    shown = answer.model_dump(mode="json")
    return {
        "job": {**{name: shown[name] for name in JOB_FIELDS}, "attempts": answer.attempt},
        "model": {"id": job.model_id, "name": model_name},
        "datasets": datasets_read(job.request),
        "seed": request.seed,
        "params": shown["params"],
        "metrics": shown["metrics"],
        "epochs_run": result.get("epochs_run"),
        "compile": request.compile.model_dump(mode="json") if request.compile is not None else None,
        "started_from": request.weights.source if request.weights is not None else None,
        "trained_with": result.get("trained_with"),
    }
