"""The model registry over HTTP: /v1/registry (registered models), their versions with lineage and artifacts,
and aliases."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.core.blobs import stream_blob
from app.core.database import get_session
from app.core.settings import Settings
from app.http.auth import Caller, current_caller
from app.http.deps import settings
from app.http.openapi import file_response
from app.http.sessions import SessionReleasingRoute
from app.jobs.dispatch import send_job
from app.registry import exports, service
from app.registry.schemas import (
    AliasOut,
    AliasSet,
    ExportCreate,
    ExportOut,
    RegisteredModelCreate,
    RegisteredModelDetail,
    RegisteredModelOut,
    VersionArtifactOut,
    VersionCreate,
    VersionOut,
)

router = APIRouter(prefix="/v1/registry", tags=["registry"], route_class=SessionReleasingRoute)

# Keras 3 loads weights only from files named *.weights.h5, so that is the download name (as for a job's).
DOWNLOAD_NAMES = {"weights.h5": "model.weights.h5"}
MEDIA_TYPES = ("application/x-hdf5", "application/zip", "application/json", "application/yaml", "text/csv")


def _model_out(model: Any, aliases: dict[str, int]) -> dict[str, Any]:
    return {"name": model.name, "description": model.description, "latest_version": model.latest_version or None,
            "aliases": aliases, "created_at": model.created_at,
            "links": {"self": f"/v1/registry/{model.name}", "versions": f"/v1/registry/{model.name}/versions"}}


def _version_out(name: str, version: Any, artifacts: list[Any], aliases: list[str]) -> VersionOut:
    base = f"/v1/registry/{name}/versions/{version.version}"
    return VersionOut(
        name=name, version=version.version, reference=f"{name}/{version.version}", description=version.description,
        aliases=aliases, job_id=version.job_id, model_id=version.model_id, created_at=version.created_at,
        lineage=version.lineage,
        artifacts=[VersionArtifactOut(name=a.name, size_bytes=a.size_bytes, media_type=a.media_type,
                                      sha256=a.blob_sha256, url=f"{base}/artifacts/{a.name}") for a in artifacts],
        links={"self": base, "artifacts": f"{base}/artifacts", "job": f"/v1/jobs/{version.job_id}",
               "registered_model": f"/v1/registry/{name}"})


def _one_version(session: Session, name: str, version: Any) -> VersionOut:
    aliases = [row.alias for row in service.version_aliases(session, model_id=version.registered_model_id)
               if row.version == version.version]
    return _version_out(name, version, service.version_artifacts(session, version_id=version.id), aliases)


@router.post("", response_model=RegisteredModelOut, status_code=status.HTTP_201_CREATED,
             summary="Register a model name: versions are added to it from succeeded fit jobs",
             description="Names are yours alone (another tenant may use the same one); a name you already have is "
                         "a 409.")
def create_registered_model(body: RegisteredModelCreate, session: Session = Depends(get_session),
                            caller: Caller = Depends(current_caller)) -> RegisteredModelOut:
    model = service.create_model(session, tenant_id=caller.tenant_id, name=body.name, description=body.description)
    session.commit()
    return RegisteredModelOut(**_model_out(model, {}))


@router.get("", response_model=list[RegisteredModelOut], summary="Your registered models, by name",
            description="Each with its newest version's number and its aliases; another tenant's are not listed.")
def list_registered_models(session: Session = Depends(get_session),
                           caller: Caller = Depends(current_caller)) -> list[RegisteredModelOut]:
    models, aliases = service.list_models(session, tenant_id=caller.tenant_id)
    return [RegisteredModelOut(**_model_out(model, aliases.get(model.id, {}))) for model in models]


@router.get("/{name}", response_model=RegisteredModelDetail,
            summary="A registered model: its versions (with lineage and artifacts) and aliases",
            description="Another tenant's registered model, like one that does not exist, is a 404.")
def get_registered_model(name: str, session: Session = Depends(get_session),
                         caller: Caller = Depends(current_caller)) -> RegisteredModelDetail:
    model, versions, aliases, artifacts = service.model_detail(session, tenant_id=caller.tenant_id, name=name)
    by_version: dict[str, list[Any]] = {}
    for artifact in artifacts:
        by_version.setdefault(artifact.version_id, []).append(artifact)
    return RegisteredModelDetail(
        **_model_out(model, {row.alias: row.version for row in aliases}),
        versions=[_version_out(name, version, by_version.get(version.id, []),
                               [row.alias for row in aliases if row.version == version.version])
                  for version in versions])


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a registered model, its versions and aliases",
               description="The versions' files are freed for collection unless something else holds the same "
                           "bytes; jobs trained or started from a version keep what they have.")
def delete_registered_model(name: str, session: Session = Depends(get_session),
                            caller: Caller = Depends(current_caller)) -> Response:
    service.delete_model(session, tenant_id=caller.tenant_id, name=name)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/versions", response_model=VersionOut, status_code=status.HTTP_201_CREATED,
             summary="Add a version made from a succeeded fit job",
             description="Numbered after the model's newest (1, 2, ...) and immutable: it keeps the job's weights, "
                         ".keras model and architecture (the same bytes, referenced by the version itself, so "
                         "deleting the job leaves the version whole) and the job's lineage. Jobs take it as "
                         "`model_version: \"name/3\"` or `\"name@alias\"` wherever they take a trained model.")
def register_model_version(name: str, body: VersionCreate, session: Session = Depends(get_session),
                           caller: Caller = Depends(current_caller)) -> VersionOut:
    model, version = service.register_version(session, tenant_id=caller.tenant_id, name=name, job_id=body.job_id,
                                              description=body.description)
    answer = _version_out(model.name, version, service.version_artifacts(session, version_id=version.id), [])
    session.commit()
    return answer


@router.get("/{name}/versions", response_model=list[VersionOut], summary="A registered model's versions, oldest first",
            description="Each with its lineage, aliases and files, as `GET /v1/registry/{name}/versions/{version}`.")
def list_model_versions(name: str, session: Session = Depends(get_session),
                        caller: Caller = Depends(current_caller)) -> list[VersionOut]:
    return get_registered_model(name, session, caller).versions


@router.get("/{name}/versions/{version}", response_model=VersionOut,
            summary="One version with its lineage: by number (`3`), or by alias (`champion`, `latest`)",
            description="Lineage: the job (and its attempts, sweep), the model spec, every dataset by sha256 with "
                        "its arrays' shapes, the seed, params, final and best metrics, the compile document, the "
                        "weights it started from, and the versions of kerasd, Keras and the backend that trained "
                        "it, copied when the version was registered.")
def get_model_version(name: str, version: str, session: Session = Depends(get_session),
                      caller: Caller = Depends(current_caller)) -> VersionOut:
    _model, found = service.version_by_path(session, tenant_id=caller.tenant_id, name=name, version=version)
    return _one_version(session, name, found)


@router.get("/{name}/versions/{version}/artifacts", response_model=list[VersionArtifactOut],
            summary="A version's files: names, sizes and sha256",
            description="The job's trained files the version keeps (`weights.h5`, `model.keras`, "
                        "`architecture.json`, ...) and its verified exports (`tf_saved_model.zip`, `onnx.zip`, "
                        "`litert.zip`).")
def list_version_artifacts(name: str, version: str, session: Session = Depends(get_session),
                                 caller: Caller = Depends(current_caller)) -> list[VersionArtifactOut]:
    return get_model_version(name, version, session, caller).artifacts


@router.get("/{name}/versions/{version}/artifacts/{artifact}", response_class=StreamingResponse,
            responses=file_response("The file", *MEDIA_TYPES),
            summary="Download a version's file: weights.h5, model.keras, architecture.json, ...",
            description="The `ETag` is the file's sha256 (hex) and `Repr-Digest` its RFC 9530 digest: check the "
                        "bytes you received against either.")
def get_version_artifact(name: str, version: str, artifact: str, session: Session = Depends(get_session),
                               caller: Caller = Depends(current_caller)) -> StreamingResponse:
    _found, row = service.version_artifact(session, tenant_id=caller.tenant_id, name=name, version=version,
                                           artifact=artifact)
    digest = base64.b64encode(bytes.fromhex(row.blob_sha256)).decode()
    filename = DOWNLOAD_NAMES.get(row.name, row.name)
    return StreamingResponse(stream_blob(row.blob_sha256), media_type=row.media_type,
                             headers={"Content-Length": str(row.size_bytes), "ETag": f'"{row.blob_sha256}"',
                                      "Repr-Digest": f"sha-256=:{digest}:",
                                      "Content-Disposition": f'attachment; filename="{filename}"'})


@router.put("/{name}/aliases/{alias}", response_model=AliasOut,
            summary="Point an alias at a version (made, or moved from where it pointed, in one statement)",
            description="Readers see the alias at its old version or its new one, never neither. `latest` is "
                        "not an alias you set: it always means the newest version.")
def set_model_alias(name: str, alias: str, body: AliasSet, session: Session = Depends(get_session),
                    caller: Caller = Depends(current_caller)) -> AliasOut:
    previous, row = service.set_alias(session, tenant_id=caller.tenant_id, name=name, alias=alias,
                                      number=body.version)
    session.commit()
    return AliasOut(name=name, alias=row.alias, version=row.version, previous_version=previous,
                    updated_at=row.updated_at)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove an alias",
               description="The version stays; references to `name@alias` stop resolving (a 422 for a new job).")
def delete_model_alias(name: str, alias: str, session: Session = Depends(get_session),
                       caller: Caller = Depends(current_caller)) -> Response:
    service.delete_alias(session, tenant_id=caller.tenant_id, name=name, alias=alias)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _export_out(name: str, number: int, row: Any) -> ExportOut:
    result = row.result if isinstance(row.result, dict) else {}
    file = None
    if row.blob_sha256 is not None:
        file = VersionArtifactOut(name=row.file_name, size_bytes=row.size_bytes, media_type="application/zip",
                                  sha256=row.blob_sha256, url=f"/v1/jobs/{row.job_id}/artifacts/{row.file_name}")
    return ExportOut(job_id=row.job_id, reference=f"{name}/{number}", format=row.format,
                     status=row.status or "deleted", verification=result.get("export"), error=row.error, file=file,
                     created_at=row.created_at, links={"job": f"/v1/jobs/{row.job_id}",
                                                       "events": f"/v1/jobs/{row.job_id}/events"})


@router.post("/{name}/versions/{version}/exports", response_model=ExportOut, status_code=status.HTTP_201_CREATED,
             summary="Export a version (an export job) and verify the exported file against Keras's predictions",
             description="Keras's own `model.export` writes the format; the format's own runtime (TensorFlow's "
                         "SavedModel loader, onnxruntime, the LiteRT interpreter) then predicts the sample's first "
                         "1,000 rows (or 100 generated rows), and the largest absolute difference from Keras's "
                         "`predict` per output is recorded: `verified` within the tolerance (float32: 1e-5; LiteRT "
                         "1e-4), `mismatch` otherwise. A model Keras cannot export in the format fails the job with "
                         "Keras's message. Follow it as a job; the zip (`savedmodel.zip`, `onnx.zip`, `litert.zip`) "
                         "is laid out as `<name>/<version>/`, as TensorFlow Serving and Triton read models. "
                         "ONNX and LiteRT exports run on workers with Keras's TensorFlow backend.")
def export_model_version(name: str, version: str, body: ExportCreate, request: Request,
                         session: Session = Depends(get_session), config: Settings = Depends(settings),
                         caller: Caller = Depends(current_caller)) -> ExportOut:
    job = exports.create_export(session, tenant_id=caller.tenant_id, name=name, version=version, format=body.format,
                                sample=body.sample, max_attempts=config.max_attempts, queue_base=config.queue)
    session.commit()
    send_job(request.app.state.redis_sync, session, job, config, what="export job")
    found, rows = exports.exports_of(session, tenant_id=caller.tenant_id, name=name, version=version)
    return _export_out(name, found.version, next(row for row in rows if row.job_id == job.id))


@router.get("/{name}/versions/{version}/exports", response_model=list[ExportOut],
            summary="A version's exports: each job's status, verification and file",
            description="Oldest first; `status` is `deleted` (and `file` null) once an export's job is deleted. A "
                        "verified export's file stays with the version as `<format>.zip`.")
def list_model_version_exports(name: str, version: str, session: Session = Depends(get_session),
                               caller: Caller = Depends(current_caller)) -> list[ExportOut]:
    found, rows = exports.exports_of(session, tenant_id=caller.tenant_id, name=name, version=version)
    return [_export_out(name, found.version, row) for row in rows]
