"""The model registry's tables (DESIGN.md §16): registered models per tenant, their immutable versions (each
with its own references to the blobs of its job's artifacts) and aliases, one row each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.tables import Base, StoredFile, new_id, utcnow


class RegisteredModel(Base):
    """A tenant's named model in the registry (DESIGN.md §16): its versions are numbered 1, 2, ... in the order they
    were registered (`latest_version` is the last number given: a registration takes the next one by bumping it, in
    one UPDATE that also locks the row against a concurrent registration or alias move)."""

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_registered_models_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """One immutable version of a registered model, made from a succeeded fit job. It keeps its own references to
    the job's artifacts (model_version_artifacts) and its lineage as it was at registration, so deleting the job
    changes nothing here. No foreign key to the job for that reason; the model spec is kept (jobs that start from
    the version are made from it), so a model a version uses cannot be deleted."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("registered_model_id", "version", name="uq_model_versions_number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    registered_model_id: Mapped[str] = mapped_column(String(32), ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"))
    description: Mapped[str] = mapped_column(String(500), default="")
    job_id: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(32), ForeignKey("models.id"), index=True)
    # The job, datasets by sha256, seed, params, metrics, compile document and the versions that trained it,
    # copied from the job at registration (app/registry/lineage.py).
    lineage: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionArtifact(StoredFile, Base):
    """A version's own reference to one of its job's artifacts (the same blob, not a copy of its bytes): the blob
    stays while the version does, whatever becomes of the job (app/core/blob_gc.py counts these)."""

    __tablename__ = "model_version_artifacts"

    version_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )


class ModelAlias(Base):
    """A mutable name for one version of a registered model (`champion`): one row per alias, so moving it is one
    UPDATE of one row, atomic for every reader."""

    __tablename__ = "model_aliases"
    __table_args__ = (ForeignKeyConstraint(["version_id"], ["model_versions.id"], ondelete="CASCADE"),)

    registered_model_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(String(32), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionExport(Base):
    """An export of a version (a job of kind `export`, app/core/contract.py): the job runs it and holds its file and
    verification in its artifacts and result; this row ties it to the version. No foreign key to the job: deleting
    the job leaves the row, which then says the export is gone."""

    __tablename__ = "model_version_exports"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version_id: Mapped[str] = mapped_column(String(32), ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
