"""The blobs tables (blobs, blob_chunks): content-addressed bytes in fixed-size chunks (DESIGN.md §5). The
storing and streaming logic is in app/core/blobs.py and blob_writer.py, the collection in blob_gc.py; their
statements are here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, insert, select, text, update
from sqlalchemy.orm import Session

from app.core.sql import Question, Statement, ask, one, scalar
from app.core.tables import (
    Artifact,
    Blob,
    BlobChunk,
    Dataset,
    JobCheckpoint,
    ModelSpec,
    ModelVersionArtifact,
    WeightsFile,
    utcnow,
)

Executor = Session | Connection
BLOBS, CHUNKS = Blob.__table__, BlobChunk.__table__

# Every column that points at a blob. A new one must be added here, or its blobs are collected under it:
# tests/test_blob_gc.py checks this list against the tables' foreign keys.
BLOB_REFERENCES = (Dataset.__table__.c.blob_sha256, Artifact.__table__.c.blob_sha256,
                   WeightsFile.__table__.c.blob_sha256, JobCheckpoint.__table__.c.blob_sha256,
                   ModelSpec.__table__.c.weights_sha256, ModelVersionArtifact.__table__.c.blob_sha256)
_UNREFERENCED = [~exists().where(column == BLOBS.c.sha256) for column in BLOB_REFERENCES]

# The blob of these bytes, locked against deletion (FOR NO KEY UPDATE on PostgreSQL; SQLite has one writer) until
# the transaction ends: the row that will point at it cannot lose it to a concurrent collection.
_EXISTING = Statement(select(BLOBS).where(BLOBS.c.sha256 == bindparam("sha256")).with_for_update(key_share=True))
_INSERT = Statement(insert(BLOBS))
_COUNT_CHUNKS = Statement(update(BLOBS).where(BLOBS.c.sha256 == bindparam("blob"))
                          .values(chunk_count=bindparam("chunks")).returning(*BLOBS.c))
_INSERT_CHUNK = Statement(insert(CHUNKS))
_CHUNK = Statement(select(CHUNKS.c.data).where(CHUNKS.c.blob_sha256 == bindparam("sha256"),
                                               CHUNKS.c.seq == bindparam("seq")))
_RENAME_CHUNKS = Statement(update(CHUNKS).where(CHUNKS.c.blob_sha256 == bindparam("old"))
                           .values(blob_sha256=bindparam("new")))
_DELETE = Statement(delete(BLOBS).where(BLOBS.c.sha256 == bindparam("blob")))
_BLOB = Statement(select(BLOBS).where(BLOBS.c.sha256 == bindparam("sha256")))
_COLLECTABLE = Statement(select(BLOBS.c.sha256, BLOBS.c.size_bytes)
                         .where(BLOBS.c.created_at <= bindparam("cutoff"), *_UNREFERENCED).limit(bindparam("limit")))
# Both checked again in the delete itself (an upload's chunk may have touched its partial blob since it was chosen:
# PostgreSQL re-reads the WHERE on the row version it waited for); the chunks go with it (ON DELETE CASCADE).
_COLLECT = Statement(delete(BLOBS).where(BLOBS.c.sha256 == bindparam("blob"), BLOBS.c.created_at <= bindparam("cutoff"),
                                         *_UNREFERENCED)
                     .returning(BLOBS.c.sha256))
# An upload's partial blob is dated by its last chunk, not its first: the collection's grace then counts from the
# last byte stored, and an upload slower than the grace keeps its chunks.
_TOUCH = Statement(update(BLOBS).where(BLOBS.c.sha256 == bindparam("blob")).values(created_at=bindparam("now"))
                   .returning(BLOBS.c.sha256))


def existing(executor: Executor, *, sha256: str) -> Any:
    """The stored blob row (sha256, size_bytes, chunk_count, created_at), locked against deletion, or None."""
    return ask(executor, Question(_EXISTING, {"sha256": sha256}, one))


def get(executor: Executor, *, sha256: str) -> Any:
    return ask(executor, Question(_BLOB, {"sha256": sha256}, one))


# For chunks of an upload still arriving: a crash can lose only chunks of an upload that then fails anyway; the
# transaction that names the blob and records the dataset waits for the WAL flush as any other.
_SYNC_OFF = Statement(postgresql=text("SET LOCAL synchronous_commit TO OFF"))


def commit_without_wal_flush(session: Session) -> None:
    """This transaction's commit does not wait for the WAL flush (PostgreSQL; SQLite has no such setting)."""
    if session.get_bind().dialect.name == "postgresql":
        ask(session, Question(_SYNC_OFF, {}))


def insert_blob(executor: Executor, *, sha256: str, size_bytes: int, chunk_count: int = 0) -> None:
    ask(executor, Question(_INSERT, {"sha256": sha256, "size_bytes": size_bytes, "chunk_count": chunk_count,
                                     "created_at": utcnow()}))


def set_chunk_count(executor: Executor, *, sha256: str, chunk_count: int) -> Any:
    """The blob's row after recording how many chunks it has."""
    return ask(executor, Question(_COUNT_CHUNKS, {"blob": sha256, "chunks": chunk_count}, one))


def insert_chunk(executor: Executor, *, sha256: str, seq: int, data: bytes | bytearray) -> None:
    # Core, one statement per chunk, the bytes handed to the driver as they are.
    ask(executor, Question(_INSERT_CHUNK, {"blob_sha256": sha256, "seq": seq, "data": data}))


def chunk(executor: Executor, *, sha256: str, seq: int) -> bytes | None:
    return ask(executor, Question(_CHUNK, {"sha256": sha256, "seq": seq}, scalar))


def rename_chunks(executor: Executor, *, old: str, new: str) -> None:
    ask(executor, Question(_RENAME_CHUNKS, {"old": old, "new": new}))


def delete_blob(executor: Executor, *, sha256: str) -> None:
    ask(executor, Question(_DELETE, {"blob": sha256}))


def collectable(*, cutoff: datetime, limit: int) -> Question[list[Any]]:
    """Blobs older than `cutoff` that no row points at: (sha256, size_bytes), at most `limit`."""
    return Question(_COLLECTABLE, {"cutoff": cutoff, "limit": limit})


def collect(executor: Executor, *, sha256: str, cutoff: datetime) -> bool:
    """Delete the blob if still unreferenced and dated no later than `cutoff`; whether it was."""
    return bool(ask(executor, Question(_COLLECT, {"blob": sha256, "cutoff": cutoff})))


def touch(executor: Executor, *, sha256: str) -> bool:
    """Date the blob now (an upload's partial blob, as each chunk is stored); False if it is gone."""
    return bool(ask(executor, Question(_TOUCH, {"blob": sha256, "now": utcnow()})))
