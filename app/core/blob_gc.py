"""Blobs that nothing points at any more are deleted, chunks and all (DESIGN.md §5).

Blobs are shared and content-addressed, so deleting a dataset, a job or a model never deletes its bytes
itself: another row may hold the same ones. This collection finds blobs no row refers to (datasets,
artifacts, uploaded weights, checkpoints, whole-model uploads) and deletes each in its own transaction:

- a grace period spares blobs younger than it, so bytes a worker has stored but not yet recorded (an
  artifact written before its row) are never taken;
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

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError

from app.core.database import session_scope
from app.core.tables import Artifact, Blob, Dataset, JobCheckpoint, ModelSpec, WeightsFile, utcnow

log = logging.getLogger("kerasd.blob_gc")

# Every column that points at a blob. A new one must be added here, or its blobs are collected under it:
# tests/test_blob_gc.py checks this list against the tables' foreign keys.
BLOB_REFERENCES = (Dataset.blob_sha256, Artifact.blob_sha256, WeightsFile.blob_sha256, JobCheckpoint.blob_sha256,
                   ModelSpec.weights_sha256)


@dataclass(frozen=True)
class Collected:
    blobs: int
    bytes: int


def _unreferenced():
    return [~exists().where(column == Blob.sha256) for column in BLOB_REFERENCES]


def collect_blobs(*, grace_s: float, limit: int = 1000) -> Collected:
    """Delete up to `limit` unreferenced blobs older than `grace_s` seconds; what was deleted."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    with session_scope() as session:
        candidates = session.execute(
            select(Blob.sha256, Blob.size_bytes).where(Blob.created_at <= cutoff, *_unreferenced()).limit(limit)
        ).all()
    blobs = size = 0
    for sha256, size_bytes in candidates:
        try:
            with session_scope() as session:
                # Checked again in the delete itself; its chunks go with it (ON DELETE CASCADE).
                gone = session.execute(delete(Blob).where(Blob.sha256 == sha256, *_unreferenced())).rowcount
        except IntegrityError:
            log.info("blob %s was taken into use while being collected; kept", sha256)
            continue
        if gone:
            blobs += 1
            size += size_bytes
    if blobs:
        log.info("collected %d unreferenced blob(s), %d bytes", blobs, size)
    return Collected(blobs=blobs, bytes=size)
