"""`client.jobs`: fit, evaluate and predict jobs through `POST/GET /v1/jobs`, waiting on them, their events and
artifacts; the same class serves `Client` and `AsyncClient` (see kerasd/resources.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasd import experiments
from kerasd._base import Call, Download, Operation, Sleep
from kerasd.experiments import UNSET
from kerasd.resources import TERMINAL_STATUSES, Page, Resource, _delete, _get_json


class Jobs(Resource):
    """`POST/GET /v1/jobs`: fit, evaluate and predict jobs, their events and artifacts."""

    def create(self, request: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Submit a job: the request body of `POST /v1/jobs` (kind, model_id or source_job_id, compile,
        fit / evaluate / predict, callbacks, ...), as a dict or as keyword arguments."""
        body = {**(request or {}), **fields}
        return self._run(self._create(body))

    def _create(self, body: dict[str, Any]) -> Operation:
        response = yield Call("POST", "/v1/jobs", json=body)
        return response.json()

    def get(self, job_id: str) -> Any:
        return self._run(_get_json(f"/v1/jobs/{job_id}"))

    def list(self, *, status: str | None = None, model_id: str | None = None, tags: list[str] | None = None,
             name: str | None = None, sweep_id: str | None = None, created_after: Any = None,
             created_before: Any = None, sort: str | None = None, limit: int | None = 50, offset: int = 0,
             cursor: str | None = None, total: str | None = None) -> Any:
        """Jobs with every one of `tags`, a name starting with `name`, and the other filters given, in `sort`'s
        order (default newest first; `"-metrics.val_accuracy.best"`, `"params.optimizer.learning_rate"`, `"name"`,
        `-` for descending: jobs without that metric or param come last). `limit` jobs (None: all of them), read a
        page of at most 500 at a time; where the list goes on, `page.next_cursor` (pass it as `cursor`).
        `total="exact"` counts the matches, `"estimate"` asks the database's estimate. `offset` still works, at a
        cost that grows with it."""
        filters = {"status": status, "model_id": model_id, "tag": list(tags or ()), "name": name,
                   "sweep_id": sweep_id, "created_after": created_after, "created_before": created_before,
                   "sort": sort, "total": total}
        return self._run(self._list(filters, limit, offset, cursor))

    def _list(self, filters: dict[str, Any], limit: int | None, offset: int, cursor: str | None) -> Operation:
        body = yield from experiments.list_jobs(filters, limit=limit, offset=offset, cursor=cursor)
        return Page(body)

    def update(self, job_id: str, *, name: Any = UNSET, tags: Any = UNSET, notes: Any = UNSET,
               add_tags: Any = UNSET, remove_tags: Any = UNSET) -> Any:
        """Name, tag or annotate a job (`PATCH /v1/jobs/{id}`): what is given changes, the rest stays; None clears
        a name or notes. `tags` replaces the tags; `add_tags` / `remove_tags` change them. Returns the job."""
        return self._run(experiments.update_job(job_id, {"name": name, "tags": tags, "notes": notes,
                                                         "add_tags": add_tags, "remove_tags": remove_tags}))

    def compare(self, ids: Any) -> Any:
        """Up to 500 jobs side by side (`GET /v1/jobs/compare`): a list of flat records, one per run, that
        `pandas.DataFrame` takes as it is, with `.histories` (a record per run and epoch), `.metric_names`,
        `.param_names`, `.differing_params` and `.runs` (the server's documents)."""
        return self._run(experiments.compare_jobs(ids))

    def delete(self, job_id: str) -> Any:
        return self._run(_delete(f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> Any:
        """Ask a queued or running job to stop (cooperatively: within one batch)."""
        return self._run(self._post(f"/v1/jobs/{job_id}/cancel"))

    def retry(self, job_id: str) -> Any:
        """Run a failed or cancelled job again, as a new attempt."""
        return self._run(self._post(f"/v1/jobs/{job_id}/retry"))

    def _post(self, path: str) -> Operation:
        response = yield Call("POST", path)
        return response.json() if response.content else None

    def wait(self, job_id: str, *, timeout: float | None = None, poll_interval: float = 0.25) -> Any:
        """Block until the job is succeeded, failed or cancelled; returns the job. `TimeoutError` after
        `timeout` seconds."""
        return self._run(self._wait(job_id, timeout, poll_interval))

    def _wait(self, job_id: str, timeout: float | None, poll_interval: float) -> Operation:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll_interval
        while True:
            job = yield from _get_json(f"/v1/jobs/{job_id}")
            if job.get("status") in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.get('status')} after {timeout} s")
            yield Sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 1.5, 2.0)

    def wait_started(self, job_id: str, *, on_queued: Callable[[dict[str, Any]], None] | None = None,
                     poll_interval: float = 1.0) -> Any:
        """Block while the job waits in the queue; returns the job once a worker took it (or it ended).
        `on_queued(job)` is called at each look while it waits: `job["queue_position"]` is 1 for the next."""
        return self._run(self._wait_started(job_id, on_queued, poll_interval))

    def _wait_started(self, job_id: str, on_queued: Any, poll_interval: float) -> Operation:
        while True:
            job = yield from _get_json(f"/v1/jobs/{job_id}")
            if job.get("status") != "queued":
                return job
            if on_queued is not None:
                on_queued(job)
            yield Sleep(poll_interval)

    def events(self, job_id: str, *, last_event_id: str | None = None, reconnect: bool = True,
               max_reconnects: int = 20, on_reconnect: Callable[[str], None] | None = None) -> Any:
        """The job's events from the start (or after `last_event_id`), then live ones, until its terminal
        event. A dropped connection is resumed with `Last-Event-ID`: no event is lost or repeated. Each retry
        is said: to `on_reconnect(message)`, else as a warning of the `kerasd` logger."""
        return self._client._events(job_id, last_event_id=last_event_id, reconnect=reconnect,
                                    max_reconnects=max_reconnects, notify=on_reconnect)

    def artifacts(self, job_id: str) -> Any:
        """What the job produced: name, size_bytes, media_type, sha256, url."""
        return self._run(_get_json(f"/v1/jobs/{job_id}/artifacts"))

    def artifact(self, job_id: str, name: str, path: str | os.PathLike | None = None, *,
                 verbose: int | None = None) -> Any:
        """Download an artifact (`weights.h5`, `model.keras`, `architecture.json`, ...): to `path` (a file,
        or a directory to keep the server's file name) and return the path; its bytes when no path."""
        return self._run(self._artifact(job_id, name, path, self._verbose(verbose)))

    def _artifact(self, job_id: str, name: str, path: Any, verbose: int) -> Operation:
        url = f"/v1/jobs/{job_id}/artifacts/{name}"
        if path is None:
            with tempfile.TemporaryFile() as handle:
                yield Call("GET", url, download=Download(handle, f"downloading {name}", verbose))
                handle.seek(0)
                return handle.read()
        target = Path(path)
        if target.is_dir():
            target = target / _download_name(name)
        partial = target.with_name(target.name + ".part")
        try:
            with partial.open("wb") as handle:
                yield Call("GET", url, download=Download(handle, f"downloading {name}", verbose))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target


def _download_name(name: str) -> str:
    # Keras 3 loads weights only from files named *.weights.h5.
    return {"weights.h5": "model.weights.h5"}.get(name, name)
