"""Content-addressed blobs in SQL (DESIGN.md §5): fixed-size chunks under a sha256, streamed in and out."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.database import get_sessionmaker
from app.core.tables import Blob, BlobChunk


def sha256_of_file(fileobj: BinaryIO, chunk_bytes: int) -> tuple[str, int]:
    fileobj.seek(0)
    digest = hashlib.sha256()
    size = 0
    while block := fileobj.read(chunk_bytes):
        digest.update(block)
        size += len(block)
    fileobj.seek(0)
    return digest.hexdigest(), size


def existing_blob(session: Session, sha256: str) -> Blob | None:
    """The stored blob of these bytes, if any, locked against deletion (FOR KEY SHARE on PostgreSQL) until the
    transaction ends: the row that will point at it cannot lose it to a concurrent collection (app/core/blob_gc.py)."""
    return session.get(Blob, sha256, with_for_update={"key_share": True})


def store_file(session: Session, *, fileobj: BinaryIO, chunk_bytes: int) -> Blob:
    """Store a seekable file's bytes once: an existing blob with the same sha256 is reused as it is."""
    sha256, size = sha256_of_file(fileobj, chunk_bytes)
    existing = existing_blob(session, sha256)
    if existing is not None:
        return existing
    try:
        # A savepoint, so that a concurrent upload of the same bytes costs this one nothing but a retry.
        with session.begin_nested():
            blob = Blob(sha256=sha256, size_bytes=size, chunk_count=0)
            session.add(blob)
            session.flush()
            seq = 0
            while block := fileobj.read(chunk_bytes):
                session.execute(insert(BlobChunk), [{"blob_sha256": sha256, "seq": seq, "data": block}])
                seq += 1
            blob.chunk_count = seq
    except IntegrityError:
        existing = existing_blob(session, sha256)
        if existing is None:
            raise
        return existing
    return blob


def store_bytes(session: Session, *, data: bytes, chunk_bytes: int) -> Blob:
    return store_file(session, fileobj=io.BytesIO(data), chunk_bytes=chunk_bytes)


def iter_chunks(session: Session, sha256: str) -> Iterator[bytes]:
    """Yield a blob's chunks in order, one row at a time, so no whole blob is held in memory."""
    seq = 0
    while True:
        data = session.scalar(
            select(BlobChunk.data).where(BlobChunk.blob_sha256 == sha256, BlobChunk.seq == seq)
        )
        if data is None:
            return
        yield bytes(data)
        seq += 1


def stream_blob(sha256: str) -> Iterator[bytes]:
    """Chunks straight from SQL, in a session of the stream's own (the request's is closed by then)."""
    session = get_sessionmaker()()
    try:
        yield from iter_chunks(session, sha256)
    finally:
        session.close()
