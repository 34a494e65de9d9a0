"""`client.registry`: registered models, their versions (with lineage) and aliases, in the style of the other
resources (operations driven by both `Client` and `AsyncClient`).

    version = client.registry.register(job, "churn")           # a succeeded fit job (its id, or a RemoteModel)
    client.registry.set_alias("churn/1", "champion")
    champion = client.registry.get("churn@champion")            # a ModelVersion: a dict, with shortcuts
    champion["lineage"]["datasets"]                             # what trained it, by sha256
    model = champion.pull()                                     # a local Keras model (needs Keras installed)
    client.jobs.create(kind="predict", model_version="churn@champion", predict={...})

A reference is `name/3` (version 3) or `name@alias` (`name@latest`: the newest version).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kerasd._base import Call, Download, Operation
from kerasd.errors import JobFailed, KerasdError
from kerasd.resources import Resource

REFERENCE = re.compile(r"^(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[^/@]+))$")


class ModelVersion(dict):
    """A version as the API answers it (name, version, reference, description, aliases, job_id, model_id,
    lineage, artifacts, ...), with shortcuts to the registry of the client that fetched it (awaitables on an
    AsyncClient)."""

    def __init__(self, body: dict[str, Any], registry: Registry) -> None:
        super().__init__(body)
        self._registry = registry

    @property
    def reference(self) -> str:
        return self["reference"]

    @property
    def lineage(self) -> dict[str, Any]:
        return self["lineage"]

    def pull(self) -> Any:
        """This version as a local Keras model."""
        return self._registry.pull(self.reference)

    def download(self, name: str = "model.keras", path: str | os.PathLike | None = None, *,
                 verbose: int | None = None) -> Any:
        return self._registry.download(self.reference, name, path, verbose=verbose)

    def set_alias(self, alias: str) -> Any:
        """Point `alias` at this version."""
        return self._registry.set_alias(self["name"], alias, self["version"])

    def export(self, format: str = "tf_saved_model", *, sample: Any = None, timeout: float | None = None) -> Any:
        """Export this version and wait for its verification (see `Registry.export`)."""
        return self._registry.export(self.reference, format, sample=sample, timeout=timeout)


def split_reference(reference: str) -> tuple[str, str]:
    """(name, version number or alias) of `name/3` or `name@alias`."""
    found = REFERENCE.match(reference)
    if found is None:
        raise ValueError(f"{reference!r} names no version: write 'name/3' (a version by number) or 'name@alias' "
                         "('name@latest' for the newest)")
    return found.group("name"), found.group("version") or found.group("alias")


def job_id_of(job: Any) -> str:
    """The id of a job given as its id, its document (a dict with "id") or a RemoteModel that was fitted."""
    if isinstance(job, str):
        return job
    if isinstance(job, dict) and "id" in job:
        return job["id"]
    trained = getattr(job, "trained_job_id", None)
    if isinstance(trained, str):
        return trained
    if hasattr(job, "trained_job_id"):
        raise ValueError("this model has not been fitted on the server yet: call fit() first, then register it")
    raise TypeError(f"register() takes a job id, a job (a dict with 'id') or a fitted RemoteModel; got "
                    f"{type(job).__name__}")


def _path(name: str, *rest: str) -> str:
    return "/".join(["/v1/registry", quote(name, safe=""), *(quote(part, safe="") for part in rest)])


class Registry(Resource):
    """`/v1/registry`: named models, versions made from succeeded fit jobs, aliases."""

    def create(self, name: str, *, description: str = "") -> Any:
        """Register a name (a 409 `Conflict` if you have it already); versions are added with `register`."""
        return self._run(self._create(name, description))

    def _create(self, name: str, description: str) -> Operation:
        response = yield Call("POST", "/v1/registry", json={"name": name, "description": description})
        return response.json()

    def list(self) -> Any:
        """Your registered models (name, description, latest_version, aliases), by name."""
        return self._run(self._get("/v1/registry"))

    def _get(self, path: str) -> Operation:
        response = yield Call("GET", path)
        return response.json()

    def get(self, reference: str) -> Any:
        """`"name"`: the registered model with every version; `"name/3"` or `"name@champion"`: that version (a
        `ModelVersion`)."""
        return self._run(self._get_any(reference))

    def _get_any(self, reference: str) -> Operation:
        if "/" not in reference and "@" not in reference:
            body = yield from self._get(_path(reference))
            body["versions"] = [ModelVersion(version, self) for version in body.get("versions", [])]
            return body
        return (yield from self._version(reference))

    def _version(self, reference: str) -> Operation:
        name, version = split_reference(reference)
        body = yield from self._get(_path(name, "versions", version))
        return ModelVersion(body, self)

    def versions(self, name: str) -> Any:
        """Every version of the registered model, oldest first."""
        return self._run(self._versions(name))

    def _versions(self, name: str) -> Operation:
        body = yield from self._get(_path(name, "versions"))
        return [ModelVersion(version, self) for version in body]

    def register(self, job: Any, name: str, *, description: str = "", create: bool = True) -> Any:
        """A new version of `name` made from a succeeded fit job (its id, its document, or a fitted RemoteModel);
        the registered model is created first if you have none of that name (unless `create=False`)."""
        return self._run(self._register(job_id_of(job), name, description, create))

    def _register(self, job_id: str, name: str, description: str, create: bool) -> Operation:
        if create:
            # A 409 is the name being there already: the version goes to it.
            yield Call("POST", "/v1/registry", json={"name": name}, allow=(409,))
        response = yield Call("POST", _path(name, "versions"), json={"job_id": job_id, "description": description})
        return ModelVersion(response.json(), self)

    def set_alias(self, name: str, alias: str, version: int | None = None) -> Any:
        """Point `alias` at a version, moved there at once if it pointed elsewhere: `set_alias("churn", "champion",
        3)` or `set_alias("churn/3", "champion")`. Returns {name, alias, version, previous_version, updated_at}."""
        if version is None:
            name, number = split_reference(name)
            if not number.isdigit():
                raise ValueError(f"give the version by number ('{name}/3'), not by alias, to point {alias!r} at it")
            version = int(number)
        return self._run(self._set_alias(name, alias, version))

    def _set_alias(self, name: str, alias: str, version: int) -> Operation:
        response = yield Call("PUT", _path(name, "aliases", alias), json={"version": version})
        return response.json()

    def delete_alias(self, name: str, alias: str) -> Any:
        return self._run(self._delete(_path(name, "aliases", alias)))

    def delete(self, name: str) -> Any:
        """Delete the registered model with its versions and aliases."""
        return self._run(self._delete(_path(name)))

    def _delete(self, path: str) -> Operation:
        yield Call("DELETE", path)
        return None

    def download(self, reference: str, name: str = "model.keras", path: str | os.PathLike | None = None, *,
                 verbose: int | None = None) -> Any:
        """A version's file (`model.keras`, `weights.h5`, `architecture.json`, ...), its sha256 checked against
        the server's: written to `path` (a file, or a directory to keep the file's name) and the path returned,
        or its bytes when no path is given."""
        return self._run(self._download(reference, name, path, self._verbose(verbose)))

    def _download(self, reference: str, name: str, path: Any, verbose: int) -> Operation:
        model, version = split_reference(reference)
        url = _path(model, "versions", version, "artifacts", name)
        label = f"downloading {reference} {name}"
        if path is None:
            with tempfile.TemporaryFile() as handle:
                response = yield Call("GET", url, download=Download(handle, label, verbose))
                handle.seek(0)
                data = handle.read()
            _check_sha256(hashlib.sha256(data).hexdigest(), response, reference, name)
            return data
        target = Path(path)
        if target.is_dir():
            target = target / {"weights.h5": "model.weights.h5"}.get(name, name)
        partial = target.with_name(target.name + ".part")
        try:
            with partial.open("wb") as handle:
                response = yield Call("GET", url, download=Download(handle, label, verbose))
            _check_sha256(_file_sha256(partial), response, reference, name)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def export(self, reference: str, format: str = "tf_saved_model", *, sample: Any = None,
               timeout: float | None = None) -> Any:
        """Export a version in `format` (`tf_saved_model`, `onnx` or `litert`) and wait for the export job: the
        export's document, whose `verification` is the parity report (`status` `verified` or `mismatch`,
        `max_abs_diff` per output between the exported file run by its own runtime and Keras's predict,
        `tolerance`, `rows`) and whose `file` is the zip to download. `sample`: rows to verify on, a numpy array
        (uploaded once per content) or `{"dataset_id", "array"}`; None: rows the worker generates from the model's
        inputs. A failed export job (a model Keras cannot export in the format) raises `JobFailed` with its
        error."""
        return self._run(self._export(reference, format, sample, timeout))

    def _export(self, reference: str, format: str, sample: Any, timeout: float | None) -> Operation:
        name, version = split_reference(reference)
        if sample is not None and not isinstance(sample, dict):
            dataset = yield from self._client.datasets._upload(sample, None, "sample.npy",
                                                               {"x_columns": None, "y_columns": None}, 0)
            sample = {"dataset_id": dataset["id"]}
        body = {"format": format, **({"sample": sample} if sample is not None else {})}
        response = yield Call("POST", _path(name, "versions", version, "exports"), json=body)
        started = response.json()
        job = yield from self._client.jobs._wait(started["job_id"], timeout, 0.25)
        if job["status"] != "succeeded":
            raise JobFailed(job)
        listed = yield from self._get(_path(name, "versions", version, "exports"))
        return next(item for item in listed if item["job_id"] == started["job_id"])

    def pull(self, reference: str) -> Any:
        """The version as a local Keras model: its `.keras` file loaded by Keras (compiled as it was trained), or
        its architecture with its weights where the job made no `.keras` file. Needs Keras installed."""
        return self._run(self._pull(reference))

    def _pull(self, reference: str) -> Operation:
        try:
            import keras
        except ImportError:
            raise ImportError("pull() needs Keras installed locally: pip install 'kerasd[keras]' tensorflow (or "
                              "another Keras backend); download() fetches the files without it.") from None
        version = yield from self._version(reference)
        names = {artifact["name"] for artifact in version["artifacts"]}
        with tempfile.TemporaryDirectory(prefix="kerasd-pull-") as workdir:
            if "model.keras" in names:
                path = yield from self._download(version.reference, "model.keras", Path(workdir) / "model.keras", 0)
                return keras.saving.load_model(path)
            architecture = yield from self._download(version.reference, "architecture.json", None, 0)
            model = keras.models.model_from_json(architecture.decode())
            weights = yield from self._download(version.reference, "weights.h5", Path(workdir), 0)
            model.load_weights(weights)
            return model


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_sha256(received: str, response: Any, reference: str, name: str) -> None:
    expected = response.headers.get("etag", "").strip('"')
    if expected and received != expected:
        raise KerasdError(f"{name} of {reference} arrived damaged: its sha256 is {received}, the server's is "
                          f"{expected}. Download it again.")
