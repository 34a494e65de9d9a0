"""The plain REST resources: `client.models`, `client.datasets`, `client.jobs`, `client.weights`,
`client.plugins`. The same classes serve `Client` (methods return values) and `AsyncClient` (methods
return awaitables; `jobs.events` is then an async iterator)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kerasd import arrays, experiments
from kerasd._base import Call, Download, Operation, ProgressReader, Sleep
from kerasd.errors import APIError, NotFound
from kerasd.experiments import UNSET
from kerasd.progress import TransferBar

if TYPE_CHECKING:
    from kerasd.client import AsyncClient, Client

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "pruned")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "pruned")


class Page(list):
    """One page of a listing: the items, plus `total`, `limit` and `offset` as the server gave them; for jobs also
    `next_cursor` (pass it as `cursor` for the next page; None on the last) and `total_kind` (`total` is None
    unless asked for with `total="exact"` or `"estimate"`, or the page holds every match)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("items", []))
        self.total: int | None = body.get("total", len(self))
        self.total_kind: str | None = body.get("total_kind")
        self.limit: int = body.get("limit", len(self))
        self.offset: int = body.get("offset", 0)
        self.next_cursor: str | None = body.get("next_cursor")


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _read_path_or_bytes(source: str | os.PathLike | bytes | BinaryIO) -> tuple[BinaryIO, str, bool]:
    if isinstance(source, bytes):
        handle = tempfile.TemporaryFile()
        handle.write(source)
        handle.seek(0)
        return handle, "upload", True
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.open("rb"), path.name, True
    return source, getattr(source, "name", "upload"), False


class Resource:
    def __init__(self, client: Client | AsyncClient) -> None:
        self._client = client

    def _run(self, operation: Operation) -> Any:
        return self._client._run(operation)

    def _verbose(self, verbose: int | None) -> int:
        return self._client.verbose if verbose is None else verbose


def _get_json(path: str, params: dict[str, Any] | None = None) -> Operation:
    response = yield Call("GET", path, params=_clean(params or {}))
    return response.json()


def _get_page(path: str, params: dict[str, Any]) -> Operation:
    response = yield Call("GET", path, params=_clean(params))
    return Page(response.json())


def _delete(path: str) -> Operation:
    yield Call("DELETE", path)
    return None


class Models(Resource):
    """`POST/GET /v1/models`: create from a spec, Keras JSON, YAML or a saved model file."""

    def create(self, spec: dict[str, Any] | str | os.PathLike, *, name: str | None = None) -> Any:
        """Create a model. `spec` is a dict (a kerasd spec or the config `model.to_json()` writes), a JSON
        or YAML string, or the path of a `.json`, `.yaml`, `.keras` or `.h5` file."""
        return self._run(self._create(spec, name))

    def _create(self, spec: Any, name: str | None) -> Operation:
        if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _looks_like_model_path(spec)):
            path = Path(spec)
            suffix = path.suffix.lower()
            if suffix in (".keras", ".h5", ".hdf5"):
                with path.open("rb") as handle:
                    response = yield Call("POST", "/v1/models", files={"file": (path.name, handle)},
                                          data=_clean({"name": name}))
                return response.json()
            spec = path.read_text()
        if isinstance(spec, str):
            text = spec.strip()
            if text.startswith("{"):
                spec = json.loads(text)
            else:
                response = yield Call("POST", "/v1/models", content=text.encode(),
                                      headers={"Content-Type": "application/yaml"},
                                      params=_clean({"name": name}))
                return response.json()
        body = dict(spec)
        if name is not None:
            body = _with_name(body, name)
        response = yield Call("POST", "/v1/models", json=body)
        return response.json()

    def get(self, model_id: str) -> Any:
        return self._run(_get_json(f"/v1/models/{model_id}"))

    def list(self, *, limit: int = 50, offset: int = 0) -> Any:
        return self._run(_get_page("/v1/models", {"limit": limit, "offset": offset}))

    def delete(self, model_id: str) -> Any:
        return self._run(_delete(f"/v1/models/{model_id}"))

    def architecture(self, model_id: str, format: str = "json") -> Any:
        """The canonical architecture as text: Keras JSON (`model.to_json()`) or YAML."""
        return self._run(self._architecture(model_id, format))

    def _architecture(self, model_id: str, fmt: str) -> Operation:
        response = yield Call("GET", f"/v1/models/{model_id}/architecture", params={"format": fmt})
        return response.text


def _joined(columns: str | Sequence[str] | None) -> str | None:
    if columns is None or isinstance(columns, str):
        return columns
    return ",".join(columns)


def _looks_like_model_path(text: str) -> bool:
    return "\n" not in text and not text.lstrip().startswith("{") and Path(text).suffix.lower() in (
        ".json", ".yaml", ".yml", ".keras", ".h5", ".hdf5")


def _with_name(body: dict[str, Any], name: str) -> dict[str, Any]:
    if "config" in body and "class_name" in body and isinstance(body["config"], dict):
        return {**body, "config": {**body["config"], "name": name}}
    return {**body, "name": name}


class Datasets(Resource):
    """`POST/GET /v1/datasets`: numpy arrays stored on the server, by content hash."""

    def upload(self, data: Any, *, name: str | None = None, filename: str | None = None,
               x_columns: str | Sequence[str] | None = None, y_columns: str | Sequence[str] | None = None,
               verbose: int | None = None) -> Any:
        """Upload an array (stored as `.npy`), a dict of named arrays (`.npz`) or a `.npy`/`.npz`/`.csv` path.

        A CSV needs a header row; it becomes float32 arrays `x` (the `x_columns`, by default every column not in
        `y_columns`) and `y` (the `y_columns`). Nothing is sent when the server already holds the same arrays:
        the existing dataset is returned."""
        columns = {"x_columns": _joined(x_columns), "y_columns": _joined(y_columns)}
        return self._run(self._upload(data, name, filename, columns, self._verbose(verbose)))

    def _upload(self, data: Any, name: str | None, filename: str | None, columns: dict[str, str | None],
                verbose: int) -> Operation:
        prepared = arrays.prepare(data, filename=filename)
        is_csv = prepared.filename.lower().endswith(".csv")
        if not is_csv and any(columns.values()):
            prepared.close()
            raise ValueError("x_columns and y_columns choose the columns of a CSV file; arrays are named already")
        try:
            # The server stores a CSV as the arrays it holds, under their own hash: a CSV's is never found.
            existing = None if is_csv else (yield from self._find(prepared.sha256))
            if existing is not None:
                return existing
            bar = TransferBar(prepared.size, f"uploading {prepared.filename}", verbose=verbose)
            reader = ProgressReader(prepared.file, bar)
            response = yield Call("POST", "/v1/datasets", data=_clean({"name": name, **columns}),
                                  files={"file": (prepared.filename, reader, "application/octet-stream")})
            bar.close()
            dataset = response.json()
            if not is_csv:
                self._client._known_datasets[prepared.sha256] = dataset["id"]
            return dataset
        finally:
            prepared.close()

    def find(self, sha256: str) -> Any:
        """The dataset whose file has this sha256, or None."""
        return self._run(self._find(sha256))

    def _find(self, sha256: str) -> Operation:
        known = self._client._known_datasets.get(sha256)
        if known is not None:
            try:
                response = yield Call("GET", f"/v1/datasets/{known}")
                return response.json()
            except NotFound:
                del self._client._known_datasets[sha256]
        offset, limit = 0, 500
        # The server may filter by sha256; if it ignores the filter, the pages are compared here.
        for _ in range(40):
            response = yield Call("GET", "/v1/datasets", params={"sha256": sha256, "limit": limit, "offset": offset})
            page = response.json()
            items = page.get("items", [])
            for item in items:
                if item.get("sha256") == sha256:
                    self._client._known_datasets[sha256] = item["id"]
                    return item
            offset += len(items)
            if not items or offset >= page.get("total", 0):
                return None
        return None

    def get(self, dataset_id: str) -> Any:
        return self._run(_get_json(f"/v1/datasets/{dataset_id}"))

    def list(self, *, limit: int = 50, offset: int = 0) -> Any:
        return self._run(_get_page("/v1/datasets", {"limit": limit, "offset": offset}))

    def delete(self, dataset_id: str) -> Any:
        return self._run(_delete(f"/v1/datasets/{dataset_id}"))

    def download(self, dataset_id: str, path: str | os.PathLike | None = None, *, verbose: int | None = None) -> Any:
        """The stored file: written to `path` (returns the path), or loaded as arrays (an array for a
        `.npy`, a dict of arrays for a `.npz`) when no path is given."""
        return self._run(self._download(dataset_id, path, self._verbose(verbose)))

    def _download(self, dataset_id: str, path: Any, verbose: int) -> Operation:
        info = yield from _get_json(f"/v1/datasets/{dataset_id}")
        url = f"/v1/datasets/{dataset_id}/content"
        if path is not None:
            target = Path(path)
            with target.open("wb") as handle:
                yield Call("GET", url, download=Download(handle, f"downloading {target.name}", verbose))
            return target
        with tempfile.TemporaryFile() as handle:
            yield Call("GET", url, download=Download(handle, f"downloading {info.get('name', dataset_id)}", verbose))
            handle.seek(0)
            return arrays.load(handle.read(), info.get("format", "npy"))


class Weights(Resource):
    """`POST /v1/weights`: a `.weights.h5` file to start jobs from (`initial_weights={"weights_id": ...}`)."""

    def upload(self, source: str | os.PathLike | bytes | BinaryIO, *, name: str | None = None,
               verbose: int | None = None) -> Any:
        return self._run(self._upload(source, name, self._verbose(verbose)))

    def _upload(self, source: Any, name: str | None, verbose: int) -> Operation:
        handle, filename, owned = _read_path_or_bytes(source)
        if not filename.endswith(".weights.h5"):
            filename = "model.weights.h5"
        try:
            size = os.fstat(handle.fileno()).st_size if hasattr(handle, "fileno") else None
            bar = TransferBar(size, f"uploading {filename}", verbose=verbose)
            response = yield Call("POST", "/v1/weights", data=_clean({"name": name}),
                                  files={"file": (filename, ProgressReader(handle, bar), "application/x-hdf5")})
            bar.close()
            return response.json()
        finally:
            if owned:
                handle.close()

    def get(self, weights_id: str) -> Any:
        return self._run(_get_json(f"/v1/weights/{weights_id}"))


class Plugins(Resource):
    """`GET /v1/plugins`: the custom layers and models the server offers (tutorial §4.2, §4.3)."""

    def list(self) -> Any:
        return self._run(self._list())

    def _list(self) -> Operation:
        response = yield Call("GET", "/v1/plugins")
        body = response.json()
        return body.get("items", body) if isinstance(body, dict) else body


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


class System(Resource):
    def version(self) -> Any:
        return self._run(_get_json("/version"))

    def health(self) -> Any:
        return self._run(_get_json("/health"))


__all__ = ["APIError", "Datasets", "Jobs", "Models", "Page", "Plugins", "System", "Weights"]
