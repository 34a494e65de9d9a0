"""Content-addressed blobs in SQL (DESIGN.md §5): fixed-size chunks under a sha256, streamed in and out."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.database import get_sessionmaker
from app.core.repositories import blobs


def sha256_of_file(fileobj: BinaryIO, chunk_bytes: int) -> tuple[str, int]:
    fileobj.seek(0)
    digest = hashlib.sha256()
    size = 0
    while block := fileobj.read(chunk_bytes):
        digest.update(block)
        size += len(block)
    fileobj.seek(0)
    return digest.hexdigest(), size


def existing_blob(session: Session, sha256: str) -> Any:
    """The stored blob of these bytes (its row: sha256, size_bytes, ...), if any, locked against deletion until the
    transaction ends: the row that will point at it cannot lose it to a concurrent collection (app/core/blob_gc.py)."""
    return blobs.existing(session, sha256=sha256)


def store_file(session: Session, *, fileobj: BinaryIO, chunk_bytes: int) -> Any:
    """Store a seekable file's bytes once: an existing blob with the same sha256 is reused as it is."""
    sha256, size = sha256_of_file(fileobj, chunk_bytes)
    existing = existing_blob(session, sha256)
    if existing is not None:
        return existing
    try:
        # A savepoint, so that a concurrent upload of the same bytes costs this one nothing but a retry.
        with session.begin_nested():
            blobs.insert_blob(session, sha256=sha256, size_bytes=size)
            seq = 0
            while block := fileobj.read(chunk_bytes):
                blobs.insert_chunk(session, sha256=sha256, seq=seq, data=block)
                seq += 1
            blob = blobs.set_chunk_count(session, sha256=sha256, chunk_count=seq)
    except IntegrityError:
        existing = existing_blob(session, sha256)
        if existing is None:
            raise
        return existing
    return blob


def store_bytes(session: Session, *, data: bytes, chunk_bytes: int) -> Any:
    return store_file(session, fileobj=io.BytesIO(data), chunk_bytes=chunk_bytes)


def iter_chunks(session: Session, sha256: str) -> Iterator[bytes]:
    """Yield a blob's chunks in order, one row at a time, so no whole blob is held in memory."""
    seq = 0
    while True:
        data = blobs.chunk(session, sha256=sha256, seq=seq)
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
