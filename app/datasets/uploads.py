"""One dataset upload: its bytes spooled to a temporary file as they arrive, then checked and stored in one
short transaction.

Nothing touches the database while the client sends: a slow or stalled client holds a file descriptor and its
upload slot (KERASD_MAX_UPLOADS_PER_TENANT), never a connection, a transaction or (SQLite) the write lock. Once
the body is complete, in a worker thread:
- .npy: the header is checked (a pickled or object array is refused), its length against the header;
- .npz: checked from its central directory (a zip names its members at its end);
- CSV: converted to an .npz of float32 `x` and `y`, which is what is stored;
then the file is stored (app/core/blob_writer.py) and the dataset recorded, in one transaction. Whatever is
refused leaves nothing stored.
"""

from __future__ import annotations

import io
import tempfile

from sqlalchemy.orm import Session

from app.core.blob_writer import BlobWriter
from app.core.database import get_sessionmaker
from app.core.errors import Problem
from app.core.settings import Settings
from app.core.tables import Dataset
from app.datasets.array_files import ArrayFileError, check_npy_header, inspect_npy, inspect_npz
from app.datasets.service import array_name_from, csv_dataset, format_of, invalid_file, limits_of, record_dataset
from app.datasets.upload_receiver import ReceivedForm

FIELD_LIMITS = {"name": 200, "x_columns": 100_000, "y_columns": 100_000}


class DatasetUpload:
    """The sink of the form's `file` part (`open`, then `put`/`put_nowait` from the event loop), then `finish`
    in a worker thread; `abort` on failure."""

    def __init__(self, *, tenant_id: str, settings: Settings) -> None:
        self.tenant_id, self.settings = tenant_id, settings
        self.limits = limits_of(settings)
        self.fmt = self.filename = ""
        self.size = 0
        self.spool: io.BufferedRandom | None = None

    def open(self, filename: str) -> DatasetUpload:
        """Called as the file's part begins (on the event loop): the format from its name, and the spool."""
        self.fmt, self.filename = format_of(filename), filename
        self.spool = tempfile.TemporaryFile(prefix="kerasd-upload-")
        return self

    def put_nowait(self, block: bytes | bytearray) -> bool:
        # A write to the page cache: ~0.3 ms a MiB, less than a thread hop would cost.
        assert self.spool is not None
        self.spool.write(block)
        self.size += len(block)
        return True

    def put(self, block: bytes | bytearray) -> None:
        self.put_nowait(block)

    def abort(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def finish(self, form: ReceivedForm) -> Dataset:
        """Check the received file, store it and record the dataset, committed (in a thread: database work)."""
        assert self.spool is not None
        try:
            fields = self._fields(form)
            self.spool.flush()
            with get_sessionmaker()() as session:
                row = self._record(session, fields)
                session.commit()
                return row
        finally:
            self.spool.close()

    def _record(self, session: Session, fields: dict[str, str]) -> Dataset:
        spool = self.spool
        assert spool is not None
        try:
            if self.fmt == "npy":
                spool.seek(0)
                check_npy_header(spool.read(self.settings.chunk_bytes), limits=self.limits)
                arrays = inspect_npy(spool, name=array_name_from(self.filename), total_size=self.size,
                                     limits=self.limits)
            elif self.fmt == "npz":
                arrays = inspect_npz(spool, self.limits)
        except ArrayFileError as exc:
            raise invalid_file(exc) from None
        if self.fmt == "csv":
            spool.seek(0)
            blob, arrays = csv_dataset(session, fileobj=spool, settings=self.settings,
                                       x_columns=fields.get("x_columns"), y_columns=fields.get("y_columns"))
        else:
            blob = self._store(session)
        return record_dataset(session, tenant_id=self.tenant_id, blob=blob,
                              fmt="npz" if self.fmt == "csv" else self.fmt, arrays=arrays,
                              filename=self.filename, name=fields.get("name"))

    def _store(self, session: Session):
        spool = self.spool
        assert spool is not None
        writer = BlobWriter(session)
        try:
            spool.seek(0)
            while block := spool.read(self.settings.chunk_bytes):
                writer.put(block)
            writer.close()
            if writer.error is not None:
                raise writer.error
            return writer.finish()
        except BaseException:
            writer.abort()
            raise

    def _fields(self, form: ReceivedForm) -> dict[str, str]:
        fields = {key: value for key, value in form.fields.items() if key in FIELD_LIMITS and value}
        for key, value in fields.items():
            if len(value) > FIELD_LIMITS[key]:
                raise Problem(422, "Invalid Form", f"The form field {key!r} has {len(value):,} characters; the "
                              f"limit is {FIELD_LIMITS[key]:,}.", field=key)
        if self.fmt != "csv" and (fields.get("x_columns") or fields.get("y_columns")):
            raise Problem(422, "Invalid Arguments", "x_columns and y_columns choose columns of a CSV upload; an "
                          f"{self.fmt} file names its arrays itself.")
        return fields
