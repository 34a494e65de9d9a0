"""The registry's use cases: register models, make immutable versions from succeeded fit jobs, move aliases, read
versions and their artifacts; every one within the caller's tenant (another tenant's is a 404). The caller owns
the commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Problem
from app.core.sql import ask
from app.jobs import repository as jobs
from app.jobs import service as job_service
from app.models.service import get_model
from app.registry import repository
from app.registry.lineage import lineage_of
from app.registry.references import Reference, find_version
from app.registry.schemas import ALIAS, LATEST, NAME

# What a version keeps of its job: the trained model in every form the job produced (not its TensorBoard logs).
VERSION_ARTIFACTS = ("weights.h5", "model.keras", "model.h5", "architecture.json", "architecture.yaml",
                     "savedmodel.zip", "history.csv")


def _missing(name: str) -> Problem:
    return Problem(404, "Unknown Registered Model", f"No registered model named {name!r}; list yours with "
                   "GET /v1/registry, or register one with POST /v1/registry.")


def get_model_named(session: Session, *, tenant_id: str, name: str, lock: bool = False) -> Any:
    found = ask(session, repository.model_named(tenant_id=tenant_id, name=name, lock=lock)) if NAME.match(name) \
        else None
    if found is None:
        raise _missing(name)
    return found


def create_model(session: Session, *, tenant_id: str, name: str, description: str) -> Any:
    try:
        with session.begin_nested():
            return repository.insert_model(session, tenant_id=tenant_id, name=name, description=description,
                                           latest_version=0)
    except IntegrityError:
        raise Problem(409, "Registered Model Exists", f"You already have a registered model named {name!r}; add a "
                      f"version to it (POST /v1/registry/{name}/versions) or choose another name.") from None


def list_models(session: Session, *, tenant_id: str) -> tuple[list[Any], dict[str, dict[str, int]]]:
    """(the tenant's registered models by name, their aliases: model id -> {alias: version})."""
    aliases: dict[str, dict[str, int]] = {}
    for row in ask(session, repository.aliases_of_tenant(tenant_id=tenant_id)):
        aliases.setdefault(row.registered_model_id, {})[row.alias] = row.version
    return ask(session, repository.models_of(tenant_id=tenant_id)), aliases


def model_detail(session: Session, *, tenant_id: str, name: str) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """(the model, its versions oldest first, its aliases, every version's artifacts)."""
    model = get_model_named(session, tenant_id=tenant_id, name=name)
    return (model, ask(session, repository.versions_of(model_id=model.id)),
            ask(session, repository.aliases_of(model_id=model.id)),
            ask(session, repository.artifacts_of_model(model_id=model.id)))


def delete_model(session: Session, *, tenant_id: str, name: str) -> None:
    """The model, its versions, their artifact references and its aliases; the bytes go at the next blob
    collection if nothing else holds them. Jobs that started from a version keep their own copies."""
    model = get_model_named(session, tenant_id=tenant_id, name=name, lock=True)
    # A queued job names a version's blobs in its contract, not the version: they must stay until it has run. Its
    # weights tell (a version's architecture may be the same bytes as any job's of that model).
    held = {row.blob_sha256 for row in ask(session, repository.artifacts_of_model(model_id=model.id))
            if row.name == "weights.h5"}
    users = [job.id for job in ask(session, jobs.active_requests(tenant_id=tenant_id))
             if (job.request.get("weights") or {}).get("sha256") in held]
    if users:
        raise Problem(409, "Registered Model In Use", f"Job(s) {', '.join(users)} are queued or running from a "
                      f"version of {name!r}; wait for them to finish or cancel them, then delete it.")
    repository.delete_model(session, model_id=model.id)


# --- versions ------------------------------------------------------------------------------------------------

def register_version(session: Session, *, tenant_id: str, name: str, job_id: str, description: str) -> tuple[Any, Any]:
    """(the model, the new version) made from the tenant's succeeded fit job: numbered after the model's newest,
    with its own references to the job's trained artifacts and the job's lineage."""
    model = get_model_named(session, tenant_id=tenant_id, name=name)
    job = jobs.get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        raise Problem(422, "Unknown Job", f"job_id: you have no job with id {job_id!r}.", field="job_id")
    if job.kind != "fit" or job.status != "succeeded":
        what = f"an {job.kind} job" if job.kind in ("evaluate", "export") else (
            f"a {job.kind} job" if job.kind != "fit" else job.status)
        raise Problem(409, "Job Not Registrable", f"Job {job_id} is {what}: a version is made from a fit job that "
                      "succeeded (its trained weights are final). Wait for it to end, or register another.",
                      field="job_id")
    artifacts = [row for row in ask(session, jobs.artifacts_of(job_id=job_id)) if row.name in VERSION_ARTIFACTS]
    if "weights.h5" not in {row.name for row in artifacts}:
        raise Problem(409, "No Trained Weights", f"Job {job_id} produced no weights.h5 (its `artifacts` left it "
                      "out); a version needs the trained weights. Train again with weights.h5 among the artifacts.",
                      field="job_id")
    answer = job_service.job_answer(session, tenant_id=tenant_id, job_id=job_id)
    spec = get_model(session, tenant_id=tenant_id, model_id=job.model_id)
    lineage = lineage_of(job, answer, model_name=spec.name)
    # Bumping the number locks the model's row: registrations of one model take their numbers one at a time.
    number = repository.next_number(session, model_id=model.id)
    version = repository.insert_version(session, artifacts=artifacts, registered_model_id=model.id, version=number,
                                        tenant_id=tenant_id, description=description, job_id=job_id,
                                        model_id=job.model_id, lineage=lineage)
    return model, version


def get_version(session: Session, *, tenant_id: str, name: str, reference: Reference) -> tuple[Any, Any]:
    """(model, version) by number or alias, or a 404 saying which part is missing."""
    model = get_model_named(session, tenant_id=tenant_id, name=name)
    return find_version(session, tenant_id=tenant_id, reference=reference, status=404, model=model)


def version_by_path(session: Session, *, tenant_id: str, name: str, version: str) -> tuple[Any, Any]:
    """The `{version}` of a path: a number, or an alias (`latest` for the newest)."""
    if version.isdigit() and len(version) <= 9:
        reference = Reference(name, int(version), None)
    elif ALIAS.match(version):
        reference = Reference(name, None, version)
    else:
        raise Problem(404, "Unknown Model Version", f"{version!r} is neither a version number nor an alias.")
    return get_version(session, tenant_id=tenant_id, name=name, reference=reference)


def version_artifacts(session: Session, *, version_id: str) -> list[Any]:
    return ask(session, repository.artifacts_of(version_id=version_id))


def version_aliases(session: Session, *, model_id: str) -> list[Any]:
    return ask(session, repository.aliases_of(model_id=model_id))


def version_artifact(session: Session, *, tenant_id: str, name: str, version: str, artifact: str) -> tuple[Any, Any]:
    """(version, the artifact row) or a 404 naming what the version has."""
    _model, found = version_by_path(session, tenant_id=tenant_id, name=name, version=version)
    rows = version_artifacts(session, version_id=found.id)
    row = next((item for item in rows if item.name == artifact), None)
    if row is None:
        raise Problem(404, "Not Found", f"Version {name}/{found.version} has no artifact {artifact!r}; it has "
                      f"{[item.name for item in rows]}.")
    return found, row


# --- aliases -------------------------------------------------------------------------------------------------

def set_alias(session: Session, *, tenant_id: str, name: str, alias: str, number: int) -> tuple[int | None, Any]:
    """Point the alias at the version (made or moved in one statement); (the version it pointed at before, or
    None, and the alias row after)."""
    if not ALIAS.match(alias) or alias == LATEST:
        raise Problem(422, "Invalid Alias", f"{alias!r} cannot be an alias: start with a letter, then letters, "
                      "digits, '_' or '-' (at most 64); `latest` always means the newest version.", field="alias")
    # Locked: two moves of one model's aliases at once happen one after the other, and each reports the truth.
    model = get_model_named(session, tenant_id=tenant_id, name=name, lock=True)
    version = ask(session, repository.version_numbered(model_id=model.id, number=number))
    if version is None:
        newest = f"its newest is {model.latest_version}" if model.latest_version else "it has no versions yet"
        raise Problem(422, "Unknown Model Version", f"version: registered model {name!r} has no version {number} "
                      f"({newest}).", field="version")
    before = {row.alias: row.version for row in ask(session, repository.aliases_of(model_id=model.id))}
    repository.set_alias(session, model_id=model.id, alias=alias, version_id=version.id)
    after = next(row for row in ask(session, repository.aliases_of(model_id=model.id)) if row.alias == alias)
    return before.get(alias), after


def delete_alias(session: Session, *, tenant_id: str, name: str, alias: str) -> None:
    model = get_model_named(session, tenant_id=tenant_id, name=name, lock=True)
    if not ALIAS.match(alias) or not repository.delete_alias(session, model_id=model.id, alias=alias):
        raise Problem(404, "Unknown Alias", f"Registered model {name!r} has no alias {alias!r}.")
