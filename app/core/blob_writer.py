"""Stores a blob while its bytes are still arriving (DESIGN.md §5), so an upload costs one pass, not three.

The sha256 is known only at the end, so chunks go in under a provisional key inside a savepoint, and are
renamed to the sha256 at the end (PostgreSQL keeps each chunk's TOASTed data where it is on that UPDATE: the
rename rewrites ~100-byte row headers, not the data). The same bytes already stored, or a file found invalid,
roll the savepoint back: nothing of the upload remains.

`BlobWriter` runs its database work on a thread of its own, fed through a short queue, so the request's
event loop keeps receiving the next chunks while PostgreSQL stores the last ones; memory stays at a few
chunks. Hashing happens on that thread too (hashlib releases the GIL for large buffers).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import uuid
from collections.abc import Callable
from typing import IO, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from app.core.blobs import existing_blob
from app.core.errors import Problem
from app.core.repositories import blobs

# Chunks waiting for the database at most; the rest of the upload waits in the client's socket.
QUEUE_CHUNKS = 8
_END = None


class BlobWriter:
    """Feed chunks with `put` (any thread but the writer's), then `finish` for the Blob; `abort` on failure.

    `store=False` only hashes and spools (a CSV, converted before it is stored); `spool`, when given, gets
    every byte too (an .npz is checked from its central directory, at the end of the file)."""

    def __init__(self, session: Session, *, store: bool = True, spool: IO[bytes] | None = None,
                 check_first: object = None) -> None:
        self.session, self.store, self.spool = session, store, spool
        self.check_first = check_first  # called with the first chunk; raises to refuse the file early
        self.digest = hashlib.sha256()
        self.size = self.chunks = 0
        self.first: bytes | None = None
        self.error: BaseException | None = None
        self._key = f"partial-{uuid.uuid4().hex}"
        self._savepoint: SessionTransaction | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._run, name="blob-writer", daemon=True)
        self._thread.start()

    # -- the feeding side --------------------------------------------------------------------------------

    def put_nowait(self, chunk: bytes | bytearray) -> bool:
        try:
            self._queue.put_nowait(chunk)
            return True
        except queue.Full:
            return False

    def put(self, chunk: bytes | bytearray) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        """No more chunks: wait for the writer to store what it has."""
        self._queue.put(_END)
        self._thread.join()

    # -- the writer thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not _END:
            if self.error is not None:
                continue  # refused: the rest of the body is received and dropped
            try:
                self._write(chunk)
            except BaseException as exc:  # kept for the request to raise; the thread must drain the queue
                self.error = exc

    def _write(self, chunk: bytes | bytearray) -> None:
        if self.first is None:
            self.first = bytes(chunk)
            if self.check_first is not None:
                self.check_first(self.first)
        self.digest.update(chunk)
        self.size += len(chunk)
        if self.spool is not None:
            self.spool.write(chunk)
        if not self.store:
            return
        self._store_chunk(chunk)
        self.chunks += 1

    def _store_chunk(self, chunk: bytes | bytearray) -> None:
        if self._savepoint is None:
            self._savepoint = self.session.begin_nested()
            blobs.insert_blob(self.session, sha256=self._key, size_bytes=0)
        blobs.insert_chunk(self.session.connection(), sha256=self._key, seq=self.chunks, data=chunk)

    # -- the end -----------------------------------------------------------------------------------------

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def abort(self) -> None:
        """Drop whatever was stored (call after `close`, or instead of it)."""
        if self._thread.is_alive():
            self.error = self.error or RuntimeError("aborted")
            self.close()
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.rollback()

    def finish(self) -> Any:
        """The Blob of the bytes received: the one already stored under that sha256, or this one, renamed."""
        sha256 = self.sha256
        existing = existing_blob(self.session, sha256)
        if existing is not None:
            self.abort()
            return existing
        if self._savepoint is None:  # an empty file: nothing was written yet
            self._savepoint = self.session.begin_nested()
            blobs.insert_blob(self.session, sha256=self._key, size_bytes=0)
        try:
            blobs.insert_blob(self.session, sha256=sha256, size_bytes=self.size, chunk_count=self.chunks)
            blobs.rename_chunks(self.session, old=self._key, new=sha256)
            blobs.delete_blob(self.session, sha256=self._key)
            self._savepoint.commit()
        except IntegrityError:
            # The same bytes, stored by a concurrent upload that committed first.
            self._savepoint.rollback()
            existing = existing_blob(self.session, sha256)
            if existing is None:
                raise
            return existing
        return blobs.get(self.session, sha256=sha256)


def collected() -> Problem:
    return Problem(409, "Upload Collected", "The bytes of this upload stored so far were deleted as unreferenced: "
                   "nothing arrived for longer than the blob collection's grace (KERASD_BLOB_GC_GRACE_S). Send the "
                   "file again.")


class CommittingBlobWriter(BlobWriter):
    """A BlobWriter for bytes a client is still sending: each chunk is stored in a transaction of its own (a session
    of its own, its connection back in the pool at once) under the provisional key, so nothing is held while the
    next chunk is awaited: no connection, no transaction, no SQLite write lock. `finish(session)` renames the chunks
    in the caller's transaction; `abort` deletes them, and a partial blob left by a process that died is
    unreferenced, so the blob collector deletes it (app/core/blob_gc.py)."""

    def __init__(self, sessions: Callable[[], Session], *, store: bool = True, spool: IO[bytes] | None = None,
                 check_first: object = None) -> None:
        self.sessions = sessions
        self._started = False
        super().__init__(None, store=store, spool=spool, check_first=check_first)  # type: ignore[arg-type]

    def _store_chunk(self, chunk: bytes | bytearray) -> None:
        with self.sessions() as session, session.begin():
            blobs.commit_without_wal_flush(session)
            if not self._started:
                blobs.insert_blob(session, sha256=self._key, size_bytes=0)
            elif not blobs.touch(session, sha256=self._key):  # dated by its last chunk: see app/core/blob_gc.py
                raise collected()
            blobs.insert_chunk(session.connection(), sha256=self._key, seq=self.chunks, data=chunk)
        self._started = True

    def _drop(self) -> None:
        if self._started:
            with self.sessions() as session, session.begin():
                blobs.delete_blob(session, sha256=self._key)
            self._started = False

    def abort(self) -> None:
        if self._thread.is_alive():
            self.error = self.error or RuntimeError("aborted")
            self.close()
        self._drop()

    def finish(self, session: Session | None = None) -> Any:
        """The Blob of the bytes received, in `session`'s transaction (which the caller commits)."""
        assert session is not None
        sha256 = self.sha256
        existing = existing_blob(session, sha256)
        if existing is None:
            savepoint = session.begin_nested()
            try:
                # The partial blob, locked against the collection until the caller commits: its chunks are all
                # there to rename.
                if self._started and blobs.existing(session, sha256=self._key) is None:
                    raise collected()
                blobs.insert_blob(session, sha256=sha256, size_bytes=self.size, chunk_count=self.chunks)
                if self._started:
                    blobs.rename_chunks(session, old=self._key, new=sha256)
                    blobs.delete_blob(session, sha256=self._key)
                savepoint.commit()
                # The partial blob's delete commits with the caller; should the caller roll back instead, abort()
                # deletes it again.
                return blobs.get(session, sha256=sha256)
            except IntegrityError:
                # The same bytes, stored by a concurrent upload that committed first.
                savepoint.rollback()
                existing = existing_blob(session, sha256)
                if existing is None:
                    raise
        self._drop()
        return existing
