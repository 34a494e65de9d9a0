"""Datasets: uploaded .npy/.npz files, checked from their headers, stored once as a blob by sha256."""

from __future__ import annotations

import re
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.array_files import ArrayFileError, inspect_npy, inspect_npz
from app.blobs import store_file
from app.problems import Problem, not_found
from app.services.job_inputs import dataset_ids_of
from app.tables import TERMINAL_STATUSES, Dataset, Job

FORMATS = {".npy": "npy", ".npz": "npz"}


def _array_name_from(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:100]
    return cleaned or "array"


def create_dataset(session: Session, *, fileobj: BinaryIO, filename: str, name: str | None, size: int,
                   chunk_bytes: int) -> Dataset:
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise Problem(422, "Unsupported Format",
                      f"The file {filename!r} is neither .npy nor .npz; save arrays with np.save or np.savez.")
    try:
        if fmt == "npy":
            arrays = inspect_npy(fileobj, name=_array_name_from(filename), total_size=size)
        else:
            arrays = inspect_npz(fileobj)
    except ArrayFileError as exc:
        raise Problem(422, "Invalid Array File", f"{exc}. Nothing was stored.") from None
    fileobj.seek(0)
    blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
    row = Dataset(name=(name or filename)[:200], format=fmt, blob_sha256=blob.sha256, size_bytes=blob.size_bytes,
                  arrays=[a.as_dict() for a in arrays])
    session.add(row)
    session.flush()
    return row


def get_dataset(session: Session, *, dataset_id: str) -> Dataset:
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id)
    return row


def list_datasets(session: Session, *, limit: int, offset: int) -> tuple[list[Dataset], int]:
    rows = session.scalars(select(Dataset).order_by(Dataset.created_at.desc()).limit(limit).offset(offset))
    return list(rows), session.scalar(select(func.count()).select_from(Dataset))


def delete_dataset(session: Session, *, dataset_id: str) -> None:
    row = get_dataset(session, dataset_id=dataset_id)
    active = session.scalars(select(Job).where(Job.status.not_in(TERMINAL_STATUSES)))
    users = [job.id for job in active if dataset_id in dataset_ids_of(job.request)]
    if users:
        raise Problem(409, "Dataset In Use", f"Job(s) {', '.join(users)} are queued or running on this "
                      "dataset; wait for them to finish or cancel them, then delete it.")
    # The blob stays: another dataset or an artifact may hold the same bytes.
    session.delete(row)
