"""Blobs that nothing points at any more are deleted, chunks and all (DESIGN.md §5).

Blobs are shared and content-addressed, so deleting a dataset, a job or a model never deletes its bytes
itself: another row may hold the same ones. This collection finds blobs no row refers to (datasets,
artifacts, uploaded weights, checkpoints, whole-model uploads, the registry's versions) and deletes each in its
own transaction:

- a grace period spares blobs younger than it, so bytes a worker has stored but not yet recorded (an
  artifact written before its row) are never taken; an upload still arriving dates its partial blob by its
  last chunk (app/core/blob_writer.py), so an upload slower than the grace keeps what it has sent, and only
  one that stopped sending (its process died) is collected;
- the foreign keys are the last word: a row that comes to point at a blob while it is being deleted makes
  that delete fail and the blob stays (a re-upload of the same bytes reuses a blob under a key-share lock,
  see app/core/blobs.py).

Every worker runs it from its reaper thread every `KERASD_BLOB_GC_INTERVAL_S`; `kerasd admin gc-blobs`
runs it by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app.core.database import session_scope
from app.core.repositories import blobs as repository
from app.core.repositories.blobs import BLOB_REFERENCES
from app.core.sql import ask
from app.core.tables import utcnow

log = logging.getLogger("kerasd.blob_gc")

__all__ = ["BLOB_REFERENCES", "Collected", "collect_blobs"]


@dataclass(frozen=True)
class Collected:
    blobs: int
    bytes: int


def collect_blobs(*, grace_s: float, limit: int = 1000) -> Collected:
    """Delete up to `limit` unreferenced blobs older than `grace_s` seconds; what was deleted."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    with session_scope() as session:
        candidates = ask(session, repository.collectable(cutoff=cutoff, limit=limit))
    blobs = size = 0
    for sha256, size_bytes in candidates:
        try:
            with session_scope() as session:
                gone = repository.collect(session, sha256=sha256, cutoff=cutoff)
        except IntegrityError:
            log.info("blob %s was taken into use while being collected; kept", sha256)
            continue
        if gone:
            blobs += 1
            size += size_bytes
    if blobs:
        log.info("collected %d unreferenced blob(s), %d bytes", blobs, size)
    return Collected(blobs=blobs, bytes=size)
