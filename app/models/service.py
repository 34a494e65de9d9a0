"""Models: any spec form checked for safety in pure Python, built by the spec checker, stored with its summary.

The order is the point (DESIGN.md §3): translate the spec into a Keras config document, walk it against
the allowlist, bound its parameters from the config, and only then ask a sandbox to build it. Uploaded
`.keras` / `.h5` files are opened only in a sandbox, which inspects them before Keras reads them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from app.core.blobs import store_file
from app.core.errors import Problem, found
from app.core.quotas import check_storage, lock_tenant
from app.core.sql import ask
from app.core.tables import ModelSpec
from app.jobs import repository as jobs
from app.models import repository
from app.models.keras_documents import SpecError, model_document, model_name
from app.models.param_budget import estimate_params
from app.models.specs import FunctionalSpec, SequentialSpec
from app.registry import repository as registry
from app.specchecker.pool import CheckerBusy, CheckerFailed, CheckerRejected, SpecChecker
from app.specchecker.safety import Catalog, UnsafeSpec, check_config
from app.system.metrics import UPLOAD_BYTES

# Uploaded whole models: suffix -> format, and the bytes each format starts with.
FILE_FORMATS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}
MAGIC = {"keras": b"PK\x03\x04", "h5": b"\x89HDF\r\n\x1a\n"}


def catalog_of(checker: SpecChecker) -> Catalog:
    try:
        return Catalog.from_lists(checker.cached("catalog"))
    except CheckerBusy as exc:
        raise busy(exc) from None


def busy(exc: CheckerBusy) -> Problem:
    """429 (the tenant's own checks fill its share) or 503 (the checker is full), with when to try again."""
    title = "Too Many Spec Checks" if exc.status == 429 else "Spec Checker Busy"
    return Problem(exc.status, title, f"The spec checker cannot take this check now: {exc.message}. Try again in "
                   f"{exc.retry_after_s} s.", headers={"Retry-After": str(exc.retry_after_s)})


def _refused(what: str) -> str:
    return f"The {what} {'were' if what.endswith('arguments') else 'was'} refused"


def refused_walk(exc: UnsafeSpec, *, what: str, at: str = "") -> Problem:
    # A name the allowlist does not know is usually a typo; the message carries the closest names.
    title = "Unknown Name" if exc.message.startswith("unknown") else "Unsafe Spec"
    field = ".".join(part for part in (at, exc.path) if part)
    return Problem(422, title, f"{_refused(what)}: {field or '(root)'}: {exc.message}", field=field)


def walk(document: Any, catalog: Catalog, *, what: str, at: str = "") -> None:
    """The allowlist walk; `at` is where the document sits in the request (`compile`), for the field named."""
    try:
        check_config(document, catalog)
    except UnsafeSpec as exc:
        raise refused_walk(exc, what=what, at=at) from None


def in_sandbox(checker: SpecChecker, operation: str, *args: Any, what: str, tenant_id: str, at: str = "") -> Any:
    """Ask a sandbox, in the tenant's turn; whatever it refuses, and a sandbox that dies or runs out of memory, is
    a 422; a checker too busy to take it, a 429 or 503 with Retry-After."""
    try:
        return checker.call(operation, *args, tenant=tenant_id)
    except CheckerBusy as exc:
        raise busy(exc) from None
    except CheckerRejected as exc:
        raise _refusal(exc, what, at) from None
    except CheckerFailed as exc:
        raise Problem(422, "Spec Check Failed", f"Building the {what} failed: {exc}. A model this large or "
                      "complex cannot be accepted; make it smaller.") from None


def _refusal(exc: CheckerRejected, what: str, at: str) -> Problem:
    if exc.type in ("UnsafeSpec", "UnsafeFile"):
        return Problem(422, "Unsafe Spec", f"{_refused(what)}: {exc.message}")
    if exc.type == "ShapeTooLarge":
        return Problem(422, "Shape Too Large", f"{_refused(what)}: {exc.message}", **exc.detail)
    if exc.type == "UnknownName":
        # A misspelt optimizer, loss, metric or argument: the message has the closest names Keras knows.
        field = ".".join(part for part in (at, exc.detail.get("field")) if part)
        return Problem(422, "Unknown Name", f"{_refused(what)}: {at + '.' if at else ''}{exc.message}", field=field)
    if exc.type == "TooManyParameters":
        return Problem(422, "Model Too Large", f"{_refused(what)}: {exc.message}", **exc.detail)
    if exc.type == "ObjectFailed":
        return Problem(422, "Invalid Spec", f"Keras could not build the {what}: {exc.message}",
                       keras_error={"type": exc.type, "message": exc.message, **exc.detail})
    if exc.type == "LayerFailed":
        return Problem(422, "Incompatible Shapes", f"Keras could not build the {what}: {exc.message}. Change that "
                       "layer's arguments or the layer that feeds it.",
                       layer=exc.detail, keras_error={"type": exc.type, "message": exc.message})
    return Problem(422, "Invalid Spec", f"Keras could not build the {what}: {exc.type}: {exc.message}",
                   keras_error={"type": exc.type, "message": exc.message})


def checked(checker: SpecChecker, operation: str, document: dict[str, Any], *args: Any, what: str,
            tenant_id: str, at: str = "") -> Any:
    """Walk a document against the allowlist, then let a sandbox take it; any refusal is a 422."""
    walk(document, catalog_of(checker), what=what, at=at)
    return in_sandbox(checker, operation, document, *args, what=what, tenant_id=tenant_id, at=at)


def _within_budget(document: dict[str, Any], max_params: int) -> None:
    estimate = estimate_params(document)
    if estimate > max_params:
        raise Problem(422, "Model Too Large", f"The model has at least {estimate:,} parameters (counted from its "
                      f"config, before building anything); the limit is {max_params:,} "
                      "(KERASD_MAX_MODEL_PARAMS). Make it smaller.", params=estimate, limit=max_params)


def _at_users_layer(problem: Problem, spec: Any) -> Problem:
    """A layer argument Keras did not take, at the spec's own field (`layers[2].activaton`): Keras names only the
    class, and a spec often has several layers of it."""
    error = problem.extra.get("keras_error") or {}
    unknown, class_name = error.get("unknown_arguments") or [], error.get("class_name")
    if not unknown or not isinstance(spec, SequentialSpec | FunctionalSpec):
        return problem
    for index, layer in enumerate(spec.layers):
        arguments = {**(layer.model_extra or {}), **(layer.config or {})}
        if layer.class_name == class_name and unknown[0] in arguments:
            field = f"layers[{index}].{unknown[0]}"
            return Problem(problem.status, problem.title, problem.detail.replace(": ", f": {field}: ", 1),
                           headers=problem.headers, **{**problem.extra, "field": field})
    return problem


def create_model(session: Session, *, tenant_id: str, spec: Any, checker: SpecChecker, max_params: int) -> ModelSpec:
    """A model from any JSON or YAML spec form (app.models.specs)."""
    catalog = catalog_of(checker)
    try:
        document = model_document(spec, catalog)
    except SpecError as exc:
        raise Problem(422, "Invalid Spec", f"The model spec is not valid: {exc}", field=exc.field) from None
    except UnsafeSpec as exc:
        raise refused_walk(exc, what="model") from None
    walk(document, catalog, what="model")
    _within_budget(document, max_params)
    try:
        built = in_sandbox(checker, "check_model", document, max_params, what="model", tenant_id=tenant_id)
    except Problem as problem:
        raise _at_users_layer(problem, spec) from None
    return repository.insert_model(session, tenant_id=tenant_id, name=model_name(spec, document),
                                   spec=spec.model_dump(mode="json", exclude_none=True),
                                   keras_config=built["keras_config"], summary=built["summary"])


def create_model_from_file(session: Session, *, tenant_id: str, fileobj: BinaryIO, filename: str, name: str | None,
                           checker: SpecChecker, max_params: int, chunk_bytes: int) -> ModelSpec:
    """A model from an uploaded `.keras` / `.h5` file (tutorial §5.3), its file kept for its weights."""
    suffix = Path(filename).suffix.lower()
    file_format = FILE_FORMATS.get(suffix)
    if file_format is None:
        raise Problem(422, "Unsupported Format", f"The file {filename!r} is neither .keras nor .h5; upload what "
                      "model.save('model.keras') or model.save('model.h5') writes.")
    fileobj.seek(0)
    if fileobj.read(8)[:len(MAGIC[file_format])] != MAGIC[file_format]:
        raise Problem(422, "Invalid Model File", f"The file {filename!r} is not a {suffix} file (its first bytes "
                      "are not those of a zip archive / an HDF5 file). Nothing was stored.")
    check_storage(session, tenant_id, fileobj.seek(0, 2))
    with tempfile.TemporaryDirectory(prefix="kerasd-upload-") as workdir:
        # The sandbox reads the file by path; Keras picks the loader by the suffix.
        path = Path(workdir) / f"model.{file_format}"
        fileobj.seek(0)
        with path.open("wb") as copy:
            shutil.copyfileobj(fileobj, copy, 1024 * 1024)
        built = in_sandbox(checker, "check_model_file", str(path), file_format, max_params,
                           what=f"uploaded model file {filename!r}", tenant_id=tenant_id)
    fileobj.seek(0)
    blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
    # Again under the tenant's lock, so two uploads at once cannot both fit in the last free bytes.
    lock_tenant(session, tenant_id)
    check_storage(session, tenant_id, blob.size_bytes)
    config = built["keras_config"]
    row = repository.insert_model(session, tenant_id=tenant_id, name=(name or model_name(None, config))[:200],
                                  spec={"type": "upload", "filename": filename[:200], "format": file_format,
                                        "sha256": blob.sha256, "size_bytes": blob.size_bytes},
                                  keras_config=config, summary=built["summary"],
                                  weights_sha256=blob.sha256, weights_format=file_format)
    UPLOAD_BYTES.labels(kind="model").inc(blob.size_bytes)
    return row


def get_model(session: Session, *, tenant_id: str, model_id: str) -> ModelSpec:
    return found(repository.get_model(session, tenant_id=tenant_id, model_id=model_id), "model", model_id)


def list_models(session: Session, *, tenant_id: str, limit: int, offset: int) -> tuple[list[ModelSpec], int]:
    return repository.model_page(session, tenant_id=tenant_id, limit=limit, offset=offset)


def delete_model(session: Session, *, tenant_id: str, model_id: str) -> None:
    row = get_model(session, tenant_id=tenant_id, model_id=model_id)
    made = ask(session, jobs.jobs_of_model(model_id=model_id))
    if made:
        raise Problem(409, "Model In Use", f"{made} job(s) were made from model {model_id}; delete them "
                      "first (DELETE /v1/jobs/{id}) or keep the model.")
    registered = ask(session, registry.versions_made_from(spec_id=model_id))
    if registered:
        raise Problem(409, "Model In Use", f"Registered model versions were made from model {model_id} "
                      f"({', '.join(registered)}); jobs that start from them need it. Delete those registered "
                      "models first (DELETE /v1/registry/{name}) or keep the model.")
    # An uploaded file's blob stays: a dataset or artifact may hold the same bytes.
    repository.delete_model(session, row=row)
