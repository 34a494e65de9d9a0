"""Datasets: .npy/.npz/CSV uploads stored in SQL chunks as they stream in; metadata; the file back; delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core.blobs import stream_blob
from app.core.database import get_read_sessionmaker, get_session, run_sql
from app.core.errors import Problem
from app.core.quotas import check_storage
from app.core.settings import Settings
from app.core.tables import Dataset
from app.datasets import service
from app.datasets.schemas import DatasetOut, DatasetPage
from app.datasets.upload_receiver import receive_multipart
from app.datasets.uploads import FIELD_LIMITS, DatasetUpload
from app.http.admission import upload_slots
from app.http.auth import Caller, current_caller
from app.http.deps import Page, Paging, settings
from app.http.downloads import content_disposition
from app.http.limits import MULTIPART_OVERHEAD
from app.http.openapi import file_response
from app.http.sessions import SessionReleasingRoute

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=SessionReleasingRoute)


def dataset_out(row: Dataset) -> DatasetOut:
    return DatasetOut(id=row.id, name=row.name, format=row.format, sha256=row.blob_sha256,
                      size_bytes=row.size_bytes, arrays=row.arrays, created_at=row.created_at)


def _too_large(size: int, limit: int) -> Problem:
    return Problem(413, "Upload Too Large", f"The upload is {size:,} bytes; the limit is {limit:,} bytes "
                   "(KERASD_MAX_UPLOAD_BYTES). Split the arrays into several datasets.")


DATASET_UPLOAD = {
    "type": "object", "title": "DatasetUpload", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "a .npy, .npz or CSV file"},
        "name": {"type": "string", "maxLength": FIELD_LIMITS["name"]},
        "x_columns": {"type": "string", "maxLength": FIELD_LIMITS["x_columns"],
                      "description": "CSV only: feature columns for `x`, comma-separated (default: all but y)"},
        "y_columns": {"type": "string", "maxLength": FIELD_LIMITS["y_columns"],
                      "description": "CSV only: target columns for `y`, comma-separated"}}}
UPLOAD_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "$ref": "#/components/schemas/DatasetUpload", "$defs": {"DatasetUpload": DATASET_UPLOAD}}}}}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, openapi_extra=UPLOAD_FORM,
             summary="Upload arrays: .npy (one array), .npz (named arrays) or CSV with a header",
             description="Multipart form with the file in `file` (`curl -F file=@train.npz`). The file is "
                         "stored as it streams in, never held whole in memory; it is checked (numeric dtypes "
                         "only, no pickle, sizes that match, rank and array-count limits) and whatever is "
                         "refused leaves nothing stored; the same bytes are stored once. A CSV becomes an .npz "
                         "of float32 arrays `x` (and `y` when `y_columns` are named); every chosen column must "
                         "be numeric.")
async def create_dataset(request: Request, config: Settings = Depends(settings),
                         caller: Caller = Depends(current_caller)) -> DatasetOut:
    # An async route that reads the body itself (app/datasets/upload_receiver.py): each storage chunk is stored in a
    # short transaction of its own as it completes, and the dataset recorded in one once the body is complete: no
    # connection or transaction is held while the client sends. At most KERASD_MAX_UPLOADS_PER_TENANT of a tenant's
    # uploads at once, refused before any body byte.
    declared = int(request.headers.get("content-length") or 0)
    if declared > config.max_upload_bytes + MULTIPART_OVERHEAD:
        raise _too_large(declared, config.max_upload_bytes)
    with upload_slots(request.app.state).slot(caller.tenant_id):
        # Refuse a large file over the tenant's quota before receiving it (the form's overhead is below 64 KiB). A body
        # of one storage chunk or less is checked once received, as every upload is: asked here too, that SQL read
        # was a tenth of the API's CPU under a flood of small refused uploads (bench/abuse.py).
        if declared > config.chunk_bytes + MULTIPART_OVERHEAD:
            await run_sql(_check_storage, caller.tenant_id, declared - MULTIPART_OVERHEAD)
        upload = DatasetUpload(tenant_id=caller.tenant_id, settings=config)
        try:
            form = await receive_multipart(
                request, open_file=upload.open, chunk_bytes=config.chunk_bytes,
                max_file_bytes=config.max_upload_bytes,
                too_large=lambda size: _too_large(size, config.max_upload_bytes))
            row = await run_in_threadpool(upload.finish, form)
        except BaseException:
            await run_in_threadpool(upload.abort)  # joins the writer's thread, deletes what it stored
            raise
    return dataset_out(row)


def _check_storage(tenant_id: str, size: int) -> None:
    with get_read_sessionmaker()() as session:
        check_storage(session, tenant_id, size)


@router.get("", response_model=DatasetPage, summary="List datasets, newest first")
def list_datasets(paging: Paging = Depends(),
                  sha256: str | None = Query(None, pattern=r"^[0-9a-f]{64}$",
                                             description="Only datasets whose file has this sha256"),
                  session: Session = Depends(get_session), caller: Caller = Depends(current_caller)) -> Page:
    rows, total = service.list_datasets(session, tenant_id=caller.tenant_id, limit=paging.limit,
                                        offset=paging.offset, sha256=sha256)
    return Page(items=[dataset_out(r) for r in rows], total=total, limit=paging.limit, offset=paging.offset)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="A dataset's arrays: names, shapes, dtypes")
def get_dataset(dataset_id: str, session: Session = Depends(get_session),
                caller: Caller = Depends(current_caller)) -> DatasetOut:
    return dataset_out(service.get_dataset(session, tenant_id=caller.tenant_id, dataset_id=dataset_id))


@router.get("/{dataset_id}/content", summary="The uploaded file, streamed back byte for byte",
            response_class=StreamingResponse, responses=file_response("The file as it was uploaded"))
def get_dataset_content(dataset_id: str, session: Session = Depends(get_session),
                caller: Caller = Depends(current_caller)) -> StreamingResponse:
    row = service.get_dataset(session, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    filename = f"{row.name.rsplit('.', 1)[0]}.{row.format}"
    return StreamingResponse(stream_blob(row.blob_sha256), media_type="application/octet-stream",
                             headers={"Content-Length": str(row.size_bytes),
                                      "Content-Disposition": content_disposition(filename)})



@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a dataset no queued or running job uses")
def delete_dataset(dataset_id: str, session: Session = Depends(get_session),
                   caller: Caller = Depends(current_caller)) -> Response:
    service.delete_dataset(session, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
