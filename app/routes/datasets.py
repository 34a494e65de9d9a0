"""Datasets: streamed .npy/.npz uploads stored in SQL chunks; metadata; the file back; delete."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.auth import Caller, current_caller
from app.blobs import iter_chunks
from app.db import get_session, get_sessionmaker
from app.deps import Paging, settings
from app.problems import Problem
from app.schemas import DatasetOut, Page
from app.services import datasets as service
from app.sessions import SessionReleasingRoute
from app.settings import Settings
from app.tables import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=SessionReleasingRoute)


def dataset_out(row: Dataset) -> DatasetOut:
    return DatasetOut(id=row.id, name=row.name, format=row.format, sha256=row.blob_sha256,
                      size_bytes=row.size_bytes, arrays=row.arrays, created_at=row.created_at)


def _too_large(size: int, limit: int) -> Problem:
    return Problem(413, "Upload Too Large", f"The upload is {size:,} bytes; the limit is {limit:,} bytes "
                   "(KERASD_MAX_UPLOAD_BYTES). Split the arrays into several datasets.")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut,
             summary="Upload arrays: .npy (one array), .npz (named arrays) or CSV with a header",
             description="Multipart form with the file in `file` (`curl -F file=@train.npz`). The file is "
                         "spooled to disk, never held whole in memory; its headers are checked (numeric "
                         "dtypes only, no pickle, sizes that match, rank and array-count limits) before "
                         "anything is stored, and the same bytes are stored once. A CSV becomes an .npz of "
                         "float32 arrays `x` (and `y` when `y_columns` are named); every chosen column must "
                         "be numeric.")
def upload_dataset(request: Request, file: UploadFile = File(...), name: str | None = Form(None, max_length=200),
                   x_columns: str | None = Form(None, max_length=100_000, description="CSV only: feature "
                                                "columns for `x`, comma-separated (default: all but y)"),
                   y_columns: str | None = Form(None, max_length=100_000, description="CSV only: target "
                                                "columns for `y`, comma-separated"),
                   session: Session = Depends(get_session), config: Settings = Depends(settings),
                   caller: Caller = Depends(current_caller)) -> DatasetOut:
    declared = int(request.headers.get("content-length") or 0)
    if declared > config.max_upload_bytes + 64 * 1024:
        raise _too_large(declared, config.max_upload_bytes)
    size = file.size if file.size is not None else 0
    if size > config.max_upload_bytes:
        raise _too_large(size, config.max_upload_bytes)
    row = service.create_dataset(session, tenant_id=caller.tenant_id, fileobj=file.file,
                                 filename=file.filename or "", name=name, size=size, settings=config,
                                 x_columns=x_columns, y_columns=y_columns)
    session.commit()
    return dataset_out(row)


@router.get("", response_model=Page, summary="List datasets, newest first")
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


def stream_blob(sha256: str) -> Iterator[bytes]:
    """Chunks straight from SQL, in a session of the stream's own (the request's is closed by then)."""
    session = get_sessionmaker()()
    try:
        yield from iter_chunks(session, sha256)
    finally:
        session.close()


@router.get("/{dataset_id}/content", summary="The uploaded file, streamed back byte for byte")
def get_content(dataset_id: str, session: Session = Depends(get_session),
                caller: Caller = Depends(current_caller)) -> StreamingResponse:
    row = service.get_dataset(session, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    filename = f"{row.name.rsplit('.', 1)[0]}.{row.format}"
    return StreamingResponse(stream_blob(row.blob_sha256), media_type="application/octet-stream",
                             headers={"Content-Length": str(row.size_bytes),
                                      "Content-Disposition": f'attachment; filename="{filename}"'})


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a dataset no queued or running job uses")
def delete_dataset(dataset_id: str, session: Session = Depends(get_session),
                   caller: Caller = Depends(current_caller)) -> Response:
    service.delete_dataset(session, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
