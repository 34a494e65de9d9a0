"""Runs as experiments: a new job's tags and params, name/notes/tags changed, and runs compared side by side."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_core import from_json
from sqlalchemy.orm import Session

from app.core.errors import Problem, not_found
from app.core.run_metrics import goal
from app.experiments import repository
from app.experiments.params import Scalar, params_of
from app.experiments.schemas import MAX_TAGS, JobUpdate, tag_list

MAX_COMPARED = 500
ID = re.compile(r"^[0-9a-f]{32}$")


def parse_json(value: Any) -> Any:
    # Drivers differ: psycopg decodes json values itself, sqlite3 hands back text.
    return json.loads(value) if isinstance(value, str | bytes) else value


def record_submission(session: Session, *, job_id: str, tenant_id: str, tags: Sequence[str],
                      params: dict[str, Scalar]) -> None:
    """A new job's tags and params as the lists' indexed rows, in the submit's transaction."""
    repository.record_submission(session, job_id=job_id, tenant_id=tenant_id, tags=tags, params=params)


def submission_params(request: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Scalar]:
    """The params of a job about to be stored: its request as stored, and its model's summary."""
    return params_of(request, summary)


def update_job(session: Session, *, tenant_id: str, job_id: str, update: JobUpdate) -> None:
    """Change what the update gives (the caller commits); another tenant's job is as missing as none."""
    current = repository.lock_job(session, job_id=job_id, tenant_id=tenant_id) if ID.match(job_id) else None
    if current is None:
        raise not_found("job", job_id)
    given = update.model_fields_set
    for field in ("name", "notes"):
        if field in given:
            repository.set_field(session, job_id=job_id, field=field, value=getattr(update, field))
    if update.tags is not None:
        tags = tag_list(update.tags)
    elif update.add_tags is not None or update.remove_tags is not None:
        tags = tag_list((set(current) - set(update.remove_tags or ())) | set(update.add_tags or ()))
        if len(tags) > MAX_TAGS:
            raise Problem(422, "Too Many Tags", f"Job {job_id} would have {len(tags)} tags; a job has at most "
                          f"{MAX_TAGS}. Remove some (remove_tags) as you add others.", field="add_tags")
    else:
        return
    repository.set_tags(session, job_id=job_id, tenant_id=tenant_id, tags=tags)


# --- comparing runs --------------------------------------------------------------------------------------------

def compared_ids(ids: str) -> list[str]:
    """The ids of `?ids=a,b,c`, each once in the order given; a 422 for none or too many."""
    wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    if not wanted:
        raise Problem(422, "No Runs", "Name the jobs to compare: ?ids=ID,ID,... (comma-separated job ids).",
                      field="ids")
    if len(wanted) > MAX_COMPARED:
        raise Problem(422, "Too Many Runs", f"{len(wanted)} jobs named; a comparison takes at most {MAX_COMPARED}. "
                      "Narrow the list (GET /v1/jobs?tag=...&sort=...) and compare the best of it.", field="ids")
    return wanted


def missing_runs(wanted: Sequence[str], found: Iterable[str]) -> None:
    """A 404 naming the ids that are not the caller's jobs (unknown, or another tenant's: the same to them)."""
    found = set(found)
    missing = [job_id for job_id in wanted if job_id not in found]
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise Problem(404, "Not Found", f"No job with id {shown}: compare only your own jobs' ids "
                      "(GET /v1/jobs lists them).", ids=missing)


def _history(epochs_text: str | None) -> dict[str, list[float | None]]:
    """A run's metrics per epoch number, null where an epoch has no value. Decoded by pydantic's JSON parser
    (jiter): json.loads took about twice as long on 500 runs of 100 epochs and 20 metrics (bench/compare.py)."""
    epochs = sorted(from_json(epochs_text), key=lambda item: item[0]) if epochs_text else []
    if not epochs:
        return {}
    names = sorted({name for _epoch, logs in epochs for name in logs})
    if epochs[-1][0] == len(epochs) - 1 and all(len(logs) == len(names) for _epoch, logs in epochs):
        # Every epoch from 0 on, each with every metric: the common case, a list per metric in one pass each.
        return {name: [logs[name] for _epoch, logs in epochs] for name in names}
    history: dict[str, list[float | None]] = {name: [None] * (epochs[-1][0] + 1) for name in names}
    for epoch, logs in epochs:
        for name, value in logs.items():
            history[name][epoch] = value
    return history


def _value_key(value: Any) -> tuple[str, Any]:
    # 1, 1.0 and True are equal in Python; as params they are not the same value.
    return type(value).__name__, value


def comparison(wanted: Sequence[str], runs: Sequence[Any], metrics: Sequence[Any],
               epochs: dict[str, Any]) -> dict[str, Any]:
    """The comparison document (app/experiments/schemas.py's Comparison) of the runs' rows, as plain data."""
    by_id = {row.id: row for row in runs}
    summaries: dict[str, dict[str, Any]] = {job_id: {} for job_id in by_id}
    for row in metrics:
        summaries[row.job_id][row.name] = {"final": row.final, "best": row.best, "best_epoch": row.best_epoch,
                                           "goal": goal(row.name)}
    documents = []
    for job_id in wanted:
        row = by_id[job_id]
        documents.append({"id": row.id, "name": row.name, "tags": parse_json(row.tags) or [], "status": row.status,
                          "kind": row.kind, "model_id": row.model_id, "created_at": row.created_at,
                          "params": parse_json(row.params) or {}, "metrics": dict(sorted(summaries[job_id].items())),
                          "history": _history(epochs.get(job_id))})
    param_names = sorted({name for document in documents for name in document["params"]})
    metric_names = sorted({name for document in documents for name in (*document["metrics"], *document["history"])})
    missing = object()
    differing = [name for name in param_names
                 if len({_value_key(document["params"].get(name, missing)) for document in documents}) > 1]
    return {"runs": documents, "metric_names": metric_names, "param_names": param_names,
            "differing_params": differing}
