"""A version by reference (`name/3`, `name@champion`, `name@latest`), resolved to the version's row and its own
blobs: what the jobs domain turns into the job contract's starting weights, so that workers never need to know
the registry exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import Problem
from app.core.sql import ask
from app.registry import repository
from app.registry.schemas import LATEST, REFERENCE


@dataclass(frozen=True)
class Reference:
    name: str
    number: int | None
    alias: str | None

    def __str__(self) -> str:
        return f"{self.name}/{self.number}" if self.number is not None else f"{self.name}@{self.alias}"


def parse(text: str, *, field: str) -> Reference:
    found = REFERENCE.match(text) if isinstance(text, str) else None
    if found is None:
        raise Problem(422, "Invalid Model Version Reference", f"{field}: {text!r} names no version; write "
                      "`name/3` (version 3 of a registered model) or `name@alias` (`name@latest` for the newest).",
                      field=field)
    number = found.group("version")
    return Reference(found.group("name"), int(number) if number is not None else None, found.group("alias"))


def find_version(session: Session, *, tenant_id: str, reference: Reference, status: int, field: str | None = None,
                 model: Any = None) -> tuple[Any, Any]:
    """(registered model row, version row) of the tenant's reference; a `status` problem (404 for the registry's
    own routes, 422 where a job names it) saying which part is missing. Another tenant's is as missing as one
    that never was."""
    where = f"{field}: " if field else ""
    extra = {"field": field} if field else {}
    if model is None:
        model = ask(session, repository.model_named(tenant_id=tenant_id, name=reference.name))
    if model is None:
        raise Problem(status, "Unknown Registered Model", f"{where}no registered model named {reference.name!r}; "
                      "list yours with GET /v1/registry.", **extra)
    if reference.number is not None:
        version = ask(session, repository.version_numbered(model_id=model.id, number=reference.number))
        missing = f"has no version {reference.number}"
    elif reference.alias == LATEST:
        version = ask(session, repository.version_numbered(model_id=model.id, number=model.latest_version))
        missing = "has no versions yet"
    else:
        version = ask(session, repository.version_aliased(model_id=model.id, alias=reference.alias))
        missing = f"has no alias {reference.alias!r}"
    if version is None:
        newest = f" (its newest is {model.latest_version})" if model.latest_version else ""
        raise Problem(status, "Unknown Model Version", f"{where}registered model {reference.name!r} {missing}"
                      f"{newest}; see GET /v1/registry/{reference.name}.", **extra)
    return model, version


def starting_weights(session: Session, *, tenant_id: str, text: str, field: str) -> tuple[dict[str, Any], Any]:
    """(the job contract's WeightsSource fields for the version's trained weights and architecture, the version
    row: its model_id and the compile document in its lineage) for a reference a job gives in `field`."""
    reference = parse(text, field=field)
    model, version = find_version(session, tenant_id=tenant_id, reference=reference, status=422, field=field)
    return weights_of(session, model=model, version=version, reference=reference), version


def weights_of(session: Session, *, model: Any, version: Any, reference: Reference | None = None) -> dict[str, Any]:
    """The job contract's WeightsSource fields of a version: its own weights and trained architecture."""
    blobs = {row.name: row.blob_sha256 for row in ask(session, repository.artifacts_of(version_id=version.id))}
    resolved = f"{model.name}/{version.version}"
    shown = resolved if reference is None or str(reference) == resolved else f"{resolved} ({reference})"
    return {"sha256": blobs["weights.h5"], "format": "weights.h5",
            "from": f"registered model version {shown}, trained by job {version.job_id}",
            "architecture_sha256": blobs.get("architecture.json")}
