"""The plain REST resources: `client.models`, `client.datasets`, `client.jobs`, `client.weights`,
`client.plugins`. The same classes serve `Client` (methods return values) and `AsyncClient` (methods
return awaitables; `jobs.events` is then an async iterator)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kerasd import arrays
from kerasd._base import Call, Download, Operation, ProgressReader
from kerasd.errors import APIError, NotFound
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


class System(Resource):
    def version(self) -> Any:
        return self._run(_get_json("/version"))

    def health(self) -> Any:
        return self._run(_get_json("/health"))


__all__ = ["APIError", "Datasets", "Models", "Page", "Plugins", "System", "Weights"]
