"""What the `kerasd` command prints for people: jobs, models and datasets as short readable text (`--json` prints
the API's documents for machines instead), and ids given as a unique prefix (the dashboard shows 8 characters)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from kerasd.errors import KerasdError

FULL_ID = re.compile(r"^[0-9a-f]{32}$")
ID_PREFIX = re.compile(r"^[0-9a-f]{4,31}$")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) > 1e-3 or value == 0 else f"{value:.4e}"
    return "nan" if value is None else str(value)


def _when(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except ValueError:
        return None


def _shape(array: dict[str, Any]) -> str:
    return f"{array.get('name')}{tuple(array.get('shape') or ())} {array.get('dtype')}"


def job_text(job: dict[str, Any]) -> str:
    """`kerasd jobs get`: a few labelled lines, the last epoch's metrics and the error in words."""
    lines = [f"job       {job['id']}",
             f"status    {job.get('kind')} {job['status']}, attempt {job.get('attempt')} of {job.get('max_attempts')}"]
    if job.get("queue_position"):
        lines.append(f"queue     position {job['queue_position']} (1 = next)")
    lines.append(f"model     {job.get('model_id')}")
    times = [f"created {_when(job['created_at'])}"] if job.get("created_at") else []
    if job.get("started_at"):
        times.append(f"started {_when(job['started_at'])}")
    if job.get("finished_at"):
        took = _seconds_between(job.get("started_at") or job.get("created_at"), job["finished_at"])
        times.append(f"finished {_when(job['finished_at'])}" + (f" ({took:.1f} s)" if took is not None else ""))
    lines.append("time      " + ", ".join(times))
    epochs = job.get("epochs") or []
    planned = ((job.get("request") or {}).get("fit") or {}).get("epochs")
    if epochs or planned:
        lines.append(f"epochs    {len(epochs)}" + (f" of {planned}" if planned else ""))
    last = {name: values[-1] for name, values in (job.get("history") or {}).items() if values}
    if last:
        lines.append("metrics   " + "  ".join(f"{name} {_number(value)}" for name, value in sorted(last.items()))
                     + "  (last epoch)")
    evaluation = (job.get("result") or {}).get("evaluation") or {}
    if evaluation.get("metrics"):
        lines.append("evaluate  " + "  ".join(f"{name} {_number(value)}"
                                              for name, value in evaluation["metrics"].items()))
    error = job.get("error")
    if error:
        lines.append(f"error     {error.get('type')}: {error.get('message')}")
    return "\n".join(lines)


def model_text(model: dict[str, Any]) -> str:
    summary = model.get("summary") or {}
    params = summary.get("total_params")
    layers = ", ".join(f"{layer.get('name')} ({layer.get('class_name')})" for layer in summary.get("layers", []))
    return "\n".join([f"model     {model['id']}", f"name      {model.get('name')}",
                      f"params    {params:,}" if isinstance(params, int) else "params    ? (not built yet)",
                      f"layers    {layers or '-'}", f"created   {_when(model.get('created_at', ''))}"])


def model_row(model: dict[str, Any]) -> str:
    params = (model.get("summary") or {}).get("total_params")
    shown = f"{params:,} params" if isinstance(params, int) else "? params"
    return f"{model['id']}  {model.get('name')}  {shown}  {_when(model.get('created_at', ''))}"


def dataset_text(dataset: dict[str, Any]) -> str:
    arrays = ", ".join(_shape(array) for array in dataset.get("arrays", []))
    return "\n".join([f"dataset   {dataset['id']}", f"name      {dataset.get('name')}",
                      f"arrays    {arrays}", f"file      {dataset.get('format')}, {dataset.get('size_bytes', 0):,} "
                      f"bytes, sha256 {dataset.get('sha256')}", f"created   {_when(dataset.get('created_at', ''))}"])


def dataset_row(dataset: dict[str, Any]) -> str:
    arrays = ", ".join(_shape(array) for array in dataset.get("arrays", []))
    return f"{dataset['id']}  {dataset.get('name')}  {arrays}"


def resolve_id(text: str, kind: str, list_page: Any) -> str:
    """A whole id as given; a prefix of 4 to 31 hex characters (what the dashboard shows) as the one id it starts.
    `list_page(limit=, offset= or cursor=)` is the resource's listing, walked to the end to be sure the prefix is
    unique."""
    if FULL_ID.match(text) or not ID_PREFIX.match(text):
        return text
    found: list[str] = []
    offset, cursor = 0, None
    while True:
        # Jobs page by cursor (next_cursor until their last page), models and datasets by offset up to their total.
        page = list_page(limit=500, **({"cursor": cursor} if cursor else {"offset": offset}))
        found += [item["id"] for item in page if item["id"].startswith(text)]
        offset += len(page)
        cursor = page.next_cursor
        if not page or (cursor is None and (page.total is None or offset >= page.total)):
            break
    if len(found) == 1:
        return found[0]
    if not found:
        raise KerasdError(f"no {kind} has an id that starts with {text!r} (`kerasd {kind}s list` shows them)")
    raise KerasdError(f"{text!r} starts the ids of {len(found)} {kind}s ({', '.join(found[:5])}"
                      f"{', ...' if len(found) > 5 else ''}): give more of the id")
