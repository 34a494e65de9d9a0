"""Runs as experiments in the SDK: lists that follow pages, names and tags changed, and comparisons as plain
records (operations in the style of kerasd/_base.py, driven by both clients).

    runs = client.jobs.list(tags=["mnist"], sort="-metrics.val_accuracy.best", limit=20)
    client.jobs.update(runs[0]["id"], name="best-so-far", add_tags=["keep"])
    compared = client.jobs.compare([run["id"] for run in runs])
    pandas.DataFrame(compared)              # one row per run: params.*, metrics.*.final / .best / .best_epoch
    pandas.DataFrame(compared.histories)    # one row per run and epoch: id, name, epoch, each metric
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kerasd._base import Call, Operation

# The server's page size limit: a longer list is read a page at a time.
MAX_PAGE = 500
# "Leave this as it is" for update(): None means "clear" for a name or notes.
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def list_jobs(filters: dict[str, Any], *, limit: int | None, offset: int, cursor: str | None) -> Operation:
    """`limit` jobs (every one with None), reading as many pages as it takes: one page's document, whose items
    are all of them and whose `next_cursor` says where the list goes on."""
    params = {name: _value(value) for name, value in filters.items() if value not in (None, [], ())}
    once = {name: params.pop(name) for name in ("total",) if name in params}
    if offset:
        once["offset"] = offset
    items: list[Any] = []
    first: dict[str, Any] | None = None
    body: dict[str, Any] = {}
    while True:
        size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - len(items))
        page_params = {**params, "limit": size, **({"cursor": cursor} if cursor else {}),
                       **(once if first is None else {})}
        response = yield Call("GET", "/v1/jobs", params=page_params)
        body = response.json()
        first = first or body
        items += body.get("items", [])
        cursor = body.get("next_cursor")
        if cursor is None or (limit is not None and len(items) >= limit):
            break
    return {**first, "items": items, "next_cursor": body.get("next_cursor"),
            "limit": len(items) if limit is None else limit}


def update_job(job_id: str, fields: dict[str, Any]) -> Operation:
    body = {name: list(value) if isinstance(value, tuple | set) else value
            for name, value in fields.items() if value is not UNSET}
    response = yield Call("PATCH", f"/v1/jobs/{job_id}", json=body)
    return response.json()


class Comparison(list):
    """Runs side by side, as records a DataFrame takes: one dict per run (id, name, tags, status, kind, model_id,
    created_at, `params.<name>`, `metrics.<name>.final` / `.best` / `.best_epoch`), in the order asked.

    `histories`: one record per run and epoch (id, name, epoch, and each metric's value at that epoch, None where
    it has none). `metric_names`, `param_names`, `differing_params` (params whose values differ between the
    runs) and `runs` (the API's documents) as the server gave them."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.runs: list[dict[str, Any]] = body.get("runs", [])
        super().__init__(record(run) for run in self.runs)
        self.metric_names: list[str] = body.get("metric_names", [])
        self.param_names: list[str] = body.get("param_names", [])
        self.differing_params: list[str] = body.get("differing_params", [])
        self.histories: list[dict[str, Any]] = [row for run in self.runs for row in history_records(run)]


def record(run: dict[str, Any]) -> dict[str, Any]:
    """One run as a flat record."""
    flat = {key: run.get(key) for key in ("id", "name", "tags", "status", "kind", "model_id", "created_at")}
    flat.update({f"params.{name}": value for name, value in (run.get("params") or {}).items()})
    for name, summary in (run.get("metrics") or {}).items():
        for field in ("final", "best", "best_epoch"):
            flat[f"metrics.{name}.{field}"] = summary.get(field)
    return flat


def history_records(run: dict[str, Any]) -> Iterable[dict[str, Any]]:
    history = run.get("history") or {}
    epochs = max((len(values) for values in history.values()), default=0)
    for epoch in range(epochs):
        row = {"id": run.get("id"), "name": run.get("name"), "epoch": epoch}
        row.update({name: values[epoch] if epoch < len(values) else None for name, values in history.items()})
        yield row


def compare_jobs(ids: Iterable[str]) -> Operation:
    wanted = [str(job_id) for job_id in ids]
    response = yield Call("GET", "/v1/jobs/compare", params={"ids": ",".join(wanted)})
    return Comparison(response.json())
