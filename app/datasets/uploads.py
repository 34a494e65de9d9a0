"""One dataset upload as it streams in: how the file's bytes are kept, by format, and the checks at the end.

Nothing holds a database connection or transaction while the client sends: each storage chunk is stored in a
transaction of its own as it completes (app/core/blob_writer.py's CommittingBlobWriter), so a slow or stalled
client holds a file descriptor and its upload slot (KERASD_MAX_UPLOADS_PER_TENANT), never a connection, an open
transaction or (SQLite) the write lock.
- .npy: stored as it arrives; its header is checked from the first chunk (a pickled or object array stops
  being stored at once), its length against the header at the end.
- .npz: stored and spooled to an anonymous temporary file as it arrives; the local headers of the members in its
  first chunk are checked before it is stored (a small zip bomb stores nothing), and the whole from the spool at
  the end (a zip names its members in a directory at its end).
- CSV: spooled only, then converted to an .npz of float32 `x` and `y`, which is what is stored; its chosen
  columns are checked when the file part begins (if the form sent them first), its header from the first chunk.
Once the body is complete the blob is named and the dataset recorded in one short transaction, in a worker
thread. Whatever is refused leaves nothing stored.
"""

from __future__ import annotations

import functools
import io
import tempfile

from app.core.blob_writer import CommittingBlobWriter
from app.core.database import get_sessionmaker
from app.core.errors import Problem
from app.core.quotas import check_storage
from app.core.settings import Settings
from app.core.tables import Dataset
from app.datasets.array_files import (
    ArrayFileError,
    check_npy_header,
    check_npz_prefix,
    inspect_npy,
    inspect_npz,
    npz_declared_bytes,
)
from app.datasets.csv_arrays import check_csv_header, chosen_names
from app.datasets.service import array_name_from, csv_dataset, format_of, invalid_file, limits_of, record_dataset
from app.datasets.upload_receiver import ReceivedForm

FIELD_LIMITS = {"name": 200, "x_columns": 100_000, "y_columns": 100_000}


class CheckedWriter:
    """The blob writer as the multipart receiver sees it: once the writer has refused the file from its first chunk
    (an .npy's or CSV's header, an .npz's local headers), `check` raises that refusal, so the rest of the body is
    neither parsed nor spooled."""

    def __init__(self, writer: CommittingBlobWriter) -> None:
        self.writer = writer

    def put_nowait(self, block: bytes | bytearray) -> bool:
        return self.writer.put_nowait(block)

    def put(self, block: bytes | bytearray) -> None:
        self.writer.put(block)

    def check(self) -> None:
        if isinstance(self.writer.error, ArrayFileError):
            raise invalid_file(self.writer.error)


class DatasetUpload:
    def __init__(self, *, tenant_id: str, settings: Settings) -> None:
        self.tenant_id, self.settings = tenant_id, settings
        self.limits = limits_of(settings)
        self.writer: CommittingBlobWriter | None = None
        self.fmt = self.filename = ""
        self.spool: io.BufferedRandom | None = None

    def open(self, filename: str, fields: dict[str, str]) -> CheckedWriter:
        """The writer for the file's bytes (called as its part begins, on the event loop: no database work), with
        the form fields sent before it. What they and the file's first chunk already show to be refused is refused
        before anything is stored or spooled: a CSV's repeated or too many chosen columns (at once), its header,
        an .npz's members' local headers (from the first chunk)."""
        self.fmt, self.filename = format_of(filename), filename
        check = None
        if self.fmt == "npy":
            check = functools.partial(check_npy_header, limits=self.limits)
        elif self.fmt == "npz":
            check = functools.partial(check_npz_prefix, limits=self.limits)
        else:
            chosen = self._fields(fields)
            try:
                chosen_names(chosen.get("x_columns"), chosen.get("y_columns"), self.settings.max_csv_columns)
            except ArrayFileError as exc:
                raise invalid_file(exc) from None
            check = functools.partial(check_csv_header, x_columns=chosen.get("x_columns"),
                                      y_columns=chosen.get("y_columns"), max_columns=self.settings.max_csv_columns)
        if self.fmt != "npy":
            self.spool = tempfile.TemporaryFile(prefix="kerasd-upload-")
        self.writer = CommittingBlobWriter(get_sessionmaker(), store=self.fmt != "csv", spool=self.spool,
                                           check_first=check)
        return CheckedWriter(self.writer)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
        if self.spool is not None:
            self.spool.close()

    def finish(self, form: ReceivedForm) -> Dataset:
        """Check the received file, name its blob and record the dataset, committed (in a thread)."""
        assert self.writer is not None
        writer = self.writer
        writer.close()
        try:
            if isinstance(writer.error, ArrayFileError):
                raise invalid_file(writer.error)
            if writer.error is not None:
                raise writer.error
            fields = self._fields(form.fields)
            try:
                if self.fmt == "npy":
                    arrays = inspect_npy(io.BytesIO(writer.first or b""), name=array_name_from(self.filename),
                                         total_size=writer.size, limits=self.limits)
                elif self.fmt == "npz":
                    self.spool.flush()
                    # What the members claim to expand to must fit the quota before any of them is expanded
                    # (checked again, as stored, under the tenant's lock).
                    declared = npz_declared_bytes(self.spool, self.limits)
                    with get_sessionmaker()() as session:
                        check_storage(session, self.tenant_id, declared)
                    arrays = inspect_npz(self.spool, self.limits)
            except ArrayFileError as exc:
                raise invalid_file(exc) from None
            with get_sessionmaker()() as session:
                if self.fmt == "csv":
                    blob, arrays = csv_dataset(session, tenant_id=self.tenant_id, fileobj=self.spool,
                                               settings=self.settings, x_columns=fields.get("x_columns"),
                                               y_columns=fields.get("y_columns"))
                else:
                    blob = writer.finish(session)
                row = record_dataset(session, tenant_id=self.tenant_id, blob=blob,
                                     fmt="npz" if self.fmt == "csv" else self.fmt, arrays=arrays,
                                     filename=self.filename, name=fields.get("name"))
                session.commit()
                return row
        except BaseException:
            self.abort()
            raise
        finally:
            if self.spool is not None:
                self.spool.close()

    def _fields(self, received: dict[str, str]) -> dict[str, str]:
        fields = {key: value for key, value in received.items() if key in FIELD_LIMITS and value}
        for key, value in fields.items():
            if len(value) > FIELD_LIMITS[key]:
                raise Problem(422, "Invalid Form", f"The form field {key!r} has {len(value):,} characters; the "
                              f"limit is {FIELD_LIMITS[key]:,}.", field=key)
        if self.fmt != "csv" and (fields.get("x_columns") or fields.get("y_columns")):
            raise Problem(422, "Invalid Arguments", "x_columns and y_columns choose columns of a CSV upload; an "
                          f"{self.fmt} file names its arrays itself.")
        return fields
