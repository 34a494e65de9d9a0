"""Datasets: uploaded .npy/.npz/CSV files, checked, stored once as a blob by sha256 (the upload as it streams
in: dataset_uploads.py)."""

from __future__ import annotations

import csv
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from app.core.blobs import store_file
from app.core.errors import Problem, found
from app.core.quotas import check_storage, lock_tenant
from app.core.settings import Settings
from app.core.sql import ask
from app.core.tables import Dataset
from app.datasets import repository
from app.datasets.array_files import ArrayFileError, ArrayInfo, Limits
from app.datasets.csv_arrays import csv_to_npz
from app.jobs import repository as jobs
from app.jobs.inputs import dataset_ids_of
from app.system.metrics import UPLOAD_BYTES

FORMATS = {".npy": "npy", ".npz": "npz", ".csv": "csv"}


def array_name_from(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:100]
    return cleaned or "array"


def format_of(filename: str) -> str:
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise Problem(422, "Unsupported Format", f"The file {filename!r} is not .npy, .npz or .csv; save arrays "
                      "with np.save or np.savez, or upload a CSV with a header row.")
    return fmt


def limits_of(settings: Settings) -> Limits:
    return Limits(max_rank=settings.max_array_rank, max_arrays=settings.max_arrays_per_file,
                  max_expanded_bytes=settings.max_npz_expanded_bytes,
                  max_compression_ratio=settings.max_npz_compression_ratio)


def csv_dataset(session: Session, *, tenant_id: str, fileobj: BinaryIO, settings: Settings, x_columns: str | None,
                y_columns: str | None) -> tuple[Any, list[ArrayInfo]]:
    """A CSV's columns as an .npz of float32 `x` and `y`, stored; the blob and its arrays."""
    def fits_quota(nbytes: int) -> None:
        check_storage(session, tenant_id, nbytes)

    with tempfile.TemporaryDirectory(prefix="kerasd-upload-") as workdir:
        try:
            path, arrays = csv_to_npz(fileobj, max_columns=settings.max_csv_columns, workdir=Path(workdir),
                                      x_columns=x_columns, y_columns=y_columns, before_writing=fits_quota)
        except ArrayFileError as exc:
            raise invalid_file(exc) from None
        except UnicodeDecodeError as exc:
            raise Problem(422, "Invalid CSV", f"The CSV file is not UTF-8 text (byte {exc.start:,} of a line cannot "
                          "be read as UTF-8); save it as UTF-8 and upload it again. Nothing was stored.") from None
        except csv.Error as exc:
            # The csv module's own refusals: a field over its 128 KiB limit, a NUL byte, a quote left open.
            raise Problem(422, "Invalid CSV", f"The CSV file cannot be read: {exc}. A field holds one number; "
                          "nothing was stored.") from None
        with path.open("rb") as stored:
            return store_file(session, fileobj=stored, chunk_bytes=settings.chunk_bytes), arrays


def invalid_file(exc: ArrayFileError) -> Problem:
    return Problem(422, "Invalid Array File", f"{exc}. Nothing was stored.")


def record_dataset(session: Session, *, tenant_id: str, blob: Any, fmt: str, arrays: list[ArrayInfo],
                   filename: str, name: str | None) -> Dataset:
    # Again under the tenant's lock (a CSV's .npz differs in size, and two uploads at once must not both fit
    # in the last free bytes).
    # A dataset is charged at what it expands to (a compressed .npz is expanded by every worker that uses it),
    # or at its stored size when that is more.
    charged = max(blob.size_bytes, sum(a.nbytes for a in arrays))
    lock_tenant(session, tenant_id)
    check_storage(session, tenant_id, charged)
    row = repository.insert_dataset(session, tenant_id=tenant_id, name=(name or filename)[:200], format=fmt,
                                    blob_sha256=blob.sha256, size_bytes=blob.size_bytes, charged_bytes=charged,
                                    arrays=[a.as_dict() for a in arrays])
    UPLOAD_BYTES.labels(kind="dataset").inc(blob.size_bytes)
    return row


def get_dataset(session: Session, *, tenant_id: str, dataset_id: str) -> Dataset:
    return found(repository.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id), "dataset", dataset_id)


def list_datasets(session: Session, *, tenant_id: str, limit: int, offset: int,
                  sha256: str | None = None) -> tuple[list[Dataset], int]:
    return repository.dataset_page(session, tenant_id=tenant_id, limit=limit, offset=offset, sha256=sha256)


def delete_dataset(session: Session, *, tenant_id: str, dataset_id: str) -> None:
    row = get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    active = ask(session, jobs.active_requests(tenant_id=tenant_id))
    users = [job.id for job in active if dataset_id in dataset_ids_of(job.request)]
    if users:
        raise Problem(409, "Dataset In Use", f"Job(s) {', '.join(users)} are queued or running on this "
                      "dataset; wait for them to finish or cancel them, then delete it.")
    # The blob stays: another dataset or an artifact may hold the same bytes.
    repository.delete_dataset(session, row=row)
