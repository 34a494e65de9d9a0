"""Uploaded weights (`.weights.h5`) to start a job from (tutorial §5.1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, UploadFile, status
from sqlalchemy.orm import Session

from app.core.database import get_session
from app.core.settings import Settings
from app.core.tables import WeightsFile
from app.http.auth import Caller, current_caller
from app.http.deps import settings
from app.http.sessions import SessionReleasingRoute
from app.weights import service
from app.weights.schemas import WeightsOut

router = APIRouter(prefix="/v1/weights", tags=["weights"], route_class=SessionReleasingRoute)


def weights_out(row: WeightsFile) -> WeightsOut:
    return WeightsOut(id=row.id, name=row.name, sha256=row.blob_sha256, size_bytes=row.size_bytes,
                      created_at=row.created_at)


# The form as a component of its own name (FastAPI would name it after the operation).
WEIGHTS_UPLOAD = {"type": "object", "title": "WeightsUpload", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary", "description": "a .weights.h5 file"}}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WeightsOut,
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "$ref": "#/components/schemas/WeightsUpload", "$defs": {"WeightsUpload": WEIGHTS_UPLOAD}}}}}},
             summary="Upload a .weights.h5 to warm-start jobs from",
             description="What `model.save_weights('model.weights.h5')` writes (multipart field `file`). Use "
                         "the answer's id as a job's `initial_weights: {\"weights_id\": ...}`. Files with "
                         "external links or virtual datasets are refused.")
def create_weights(file: UploadFile = File(...), session: Session = Depends(get_session),
                   config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> WeightsOut:
    row = service.create_weights(session, tenant_id=caller.tenant_id, fileobj=file.file, filename=file.filename or "",
                                 chunk_bytes=config.chunk_bytes)
    session.commit()
    return weights_out(row)


@router.get("/{weights_id}", response_model=WeightsOut, summary="An uploaded weights file")
def get_weights(weights_id: str, session: Session = Depends(get_session),
                caller: Caller = Depends(current_caller)) -> WeightsOut:
    return weights_out(service.get_weights(session, tenant_id=caller.tenant_id, weights_id=weights_id))
