"""The registry's tables as the API asks them: a tenant's registered models by name, their versions by number or
alias, a version's artifacts, and the writes (a model, a version with its artifact references, an alias moved in
one statement, a model deleted with everything of it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.core.contract import EXPORT_FILES
from app.core.scope import added
from app.core.sql import Question, Statement, ask, one, scalar
from app.core.tables import (
    Artifact,
    Job,
    ModelAlias,
    ModelVersion,
    ModelVersionArtifact,
    ModelVersionExport,
    RegisteredModel,
    utcnow,
)

MODELS, VERSIONS, ARTIFACTS, ALIASES, EXPORTS = (RegisteredModel.__table__, ModelVersion.__table__,
                                                 ModelVersionArtifact.__table__, ModelAlias.__table__,
                                                 ModelVersionExport.__table__)
JOBS, JOB_ARTIFACTS = Job.__table__, Artifact.__table__

_BY_NAME = select(MODELS).where(MODELS.c.tenant_id == bindparam("tenant_id"), MODELS.c.name == bindparam("name"))
_MODEL = Statement(_BY_NAME)
# Locked until the transaction ends: a version's number and an alias's move are decided one at a time per model
# (FOR NO KEY UPDATE: rows that point at the model are not held up by it).
_MODEL_LOCKED = Statement(_BY_NAME.with_for_update(key_share=True))
_MODELS_OF = Statement(select(MODELS).where(MODELS.c.tenant_id == bindparam("tenant_id")).order_by(MODELS.c.name))
_NEXT_NUMBER = Statement(update(MODELS).where(MODELS.c.id == bindparam("model_id"))
                         .values(latest_version=MODELS.c.latest_version + 1).returning(MODELS.c.latest_version))
_VERSIONS_OF = Statement(select(VERSIONS).where(VERSIONS.c.registered_model_id == bindparam("model_id"))
                         .order_by(VERSIONS.c.version))
_VERSION = Statement(select(VERSIONS).where(VERSIONS.c.registered_model_id == bindparam("model_id"),
                                            VERSIONS.c.version == bindparam("number")))
_VERSION_BY_ALIAS = Statement(select(VERSIONS).join(ALIASES, ALIASES.c.version_id == VERSIONS.c.id)
                              .where(ALIASES.c.registered_model_id == bindparam("model_id"),
                                     ALIASES.c.alias == bindparam("alias")))
# (alias, version number, updated_at) of a model's aliases, by name; of all of a tenant's models for the list.
_ALIAS_COLUMNS = (ALIASES.c.registered_model_id, ALIASES.c.alias, VERSIONS.c.version, ALIASES.c.updated_at)
_ALIASES_OF = Statement(select(*_ALIAS_COLUMNS).join(VERSIONS, VERSIONS.c.id == ALIASES.c.version_id)
                        .where(ALIASES.c.registered_model_id == bindparam("model_id")).order_by(ALIASES.c.alias))
_ALIASES_OF_TENANT = Statement(select(*_ALIAS_COLUMNS).join(VERSIONS, VERSIONS.c.id == ALIASES.c.version_id)
                               .where(VERSIONS.c.tenant_id == bindparam("tenant_id")).order_by(ALIASES.c.alias))
_ARTIFACTS_OF_MODEL = Statement(select(ARTIFACTS).join(VERSIONS, VERSIONS.c.id == ARTIFACTS.c.version_id)
                                .where(VERSIONS.c.registered_model_id == bindparam("model_id"))
                                .order_by(ARTIFACTS.c.version_id, ARTIFACTS.c.name))
_ARTIFACTS_OF = Statement(select(ARTIFACTS).where(ARTIFACTS.c.version_id == bindparam("version_id"))
                          .order_by(ARTIFACTS.c.name))
_INSERT_ARTIFACT = Statement(insert(ARTIFACTS))
_VERSIONS_OF_SPEC = Statement(select(MODELS.c.name, VERSIONS.c.version)
                              .join(MODELS, MODELS.c.id == VERSIONS.c.registered_model_id)
                              .where(VERSIONS.c.model_id == bindparam("spec_id")).order_by(MODELS.c.name).limit(5))


def _set_alias() -> Statement:
    """INSERT the alias, or point the existing one at another version: one row, one statement."""
    def build(dialect_insert: Callable[[Any], Any]) -> Any:
        statement = dialect_insert(ALIASES)
        return statement.on_conflict_do_update(index_elements=["registered_model_id", "alias"],
                                               set_={"version_id": statement.excluded.version_id,
                                                     "updated_at": statement.excluded.updated_at})
    return Statement(postgresql=build(postgresql.insert), sqlite=build(sqlite.insert))


_SET_ALIAS = _set_alias()
_DELETE_ALIAS = Statement(delete(ALIASES).where(ALIASES.c.registered_model_id == bindparam("model_id"),
                                                ALIASES.c.alias == bindparam("alias")).returning(ALIASES.c.alias))
_INSERT_EXPORT = Statement(insert(EXPORTS))
# A version's exports with their jobs' state and file (none once the job is deleted), oldest first.
_EXPORTS_OF = Statement(
    select(EXPORTS.c.job_id, EXPORTS.c.format, EXPORTS.c.created_at, JOBS.c.status, JOBS.c.result, JOBS.c.error,
           JOB_ARTIFACTS.c.name.label("file_name"), JOB_ARTIFACTS.c.blob_sha256, JOB_ARTIFACTS.c.size_bytes)
    .select_from(EXPORTS.outerjoin(JOBS, JOBS.c.id == EXPORTS.c.job_id)
                 .outerjoin(JOB_ARTIFACTS, and_(JOB_ARTIFACTS.c.job_id == EXPORTS.c.job_id,
                                                JOB_ARTIFACTS.c.name.in_(list(EXPORT_FILES.values())))))
    .where(EXPORTS.c.version_id == bindparam("version_id")).order_by(EXPORTS.c.created_at, EXPORTS.c.job_id))
_OF_VERSIONS = select(VERSIONS.c.id).where(VERSIONS.c.registered_model_id == bindparam("model_id"))
# A model and everything of it, children first (the foreign keys cascade too; this does not rely on it).
_DELETE_MODEL = (
    Statement(delete(ALIASES).where(ALIASES.c.registered_model_id == bindparam("model_id"))),
    Statement(delete(EXPORTS).where(EXPORTS.c.version_id.in_(_OF_VERSIONS))),
    Statement(delete(ARTIFACTS).where(ARTIFACTS.c.version_id.in_(_OF_VERSIONS))),
    Statement(delete(VERSIONS).where(VERSIONS.c.registered_model_id == bindparam("model_id"))),
    Statement(delete(MODELS).where(MODELS.c.id == bindparam("model_id"))),
)


def model_named(*, tenant_id: str, name: str, lock: bool = False) -> Question[Any]:
    """The tenant's registered model of this name (locked for the transaction if asked), or None."""
    return Question(_MODEL_LOCKED if lock else _MODEL, {"tenant_id": tenant_id, "name": name}, one)


def models_of(*, tenant_id: str) -> Question[list[Any]]:
    return Question(_MODELS_OF, {"tenant_id": tenant_id})


def insert_model(session: Session, **values: Any) -> RegisteredModel:
    return added(session, RegisteredModel(**values))


def next_number(session: Session, *, model_id: str) -> int:
    """The next version number of the model, taken (and the model's row locked) in the caller's transaction."""
    return ask(session, Question(_NEXT_NUMBER, {"model_id": model_id}, scalar))


def insert_version(session: Session, *, artifacts: list[Any], **values: Any) -> ModelVersion:
    """The version and its own references to these artifact rows' blobs (name, blob_sha256, size_bytes,
    media_type). Each reference's foreign key takes a share lock on its blob: a collection running now cannot
    delete it under the new row (app/core/blob_gc.py)."""
    version = added(session, ModelVersion(**values))
    for artifact in artifacts:
        ask(session, Question(_INSERT_ARTIFACT, {
            "version_id": version.id, "name": artifact.name, "blob_sha256": artifact.blob_sha256,
            "size_bytes": artifact.size_bytes, "media_type": artifact.media_type, "created_at": utcnow()}))
    return version


def versions_of(*, model_id: str) -> Question[list[Any]]:
    return Question(_VERSIONS_OF, {"model_id": model_id})


def version_numbered(*, model_id: str, number: int) -> Question[Any]:
    return Question(_VERSION, {"model_id": model_id, "number": number}, one)


def version_aliased(*, model_id: str, alias: str) -> Question[Any]:
    return Question(_VERSION_BY_ALIAS, {"model_id": model_id, "alias": alias}, one)


def aliases_of(*, model_id: str) -> Question[list[Any]]:
    """(registered_model_id, alias, version, updated_at) of the model's aliases, by alias."""
    return Question(_ALIASES_OF, {"model_id": model_id})


def aliases_of_tenant(*, tenant_id: str) -> Question[list[Any]]:
    return Question(_ALIASES_OF_TENANT, {"tenant_id": tenant_id})


def artifacts_of(*, version_id: str) -> Question[list[Any]]:
    return Question(_ARTIFACTS_OF, {"version_id": version_id})


def artifacts_of_model(*, model_id: str) -> Question[list[Any]]:
    """Every artifact of every version of the model, by version id, then name."""
    return Question(_ARTIFACTS_OF_MODEL, {"model_id": model_id})


def versions_made_from(*, spec_id: str) -> Question[list[str]]:
    """Up to five `name/version` references made from a model spec (which therefore stays)."""
    return Question(_VERSIONS_OF_SPEC, {"spec_id": spec_id}, lambda rows: [f"{r.name}/{r.version}" for r in rows])


def set_alias(session: Session, *, model_id: str, alias: str, version_id: str) -> None:
    ask(session, Question(_SET_ALIAS, {"registered_model_id": model_id, "alias": alias, "version_id": version_id,
                                       "updated_at": utcnow()}))


def delete_alias(session: Session, *, model_id: str, alias: str) -> bool:
    return bool(ask(session, Question(_DELETE_ALIAS, {"model_id": model_id, "alias": alias})))


def delete_model(session: Session, *, model_id: str) -> None:
    for statement in _DELETE_MODEL:
        ask(session, Question(statement, {"model_id": model_id}))


def insert_export(session: Session, *, job_id: str, version_id: str, format: str) -> None:
    ask(session, Question(_INSERT_EXPORT, {"job_id": job_id, "version_id": version_id, "format": format,
                                           "created_at": utcnow()}))


def exports_of(*, version_id: str) -> Question[list[Any]]:
    """(job_id, format, created_at, the job's status, result and error, its file's name, blob_sha256 and
    size_bytes) of each export of the version, oldest first; the job's columns are None once it is deleted."""
    return Question(_EXPORTS_OF, {"version_id": version_id})
