"""What the end of an export job keeps for the registry (DESIGN.md §16): a verified export's file becomes an
artifact of the version it exported (`<format>.zip`, the newest verified export of that format), in the transaction
that ends the job, so it outlives the job and the blob collection counts the version as its holder. Here, in the
core, because the worker ends jobs and imports no API domain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from app.core.contract import EXPORT_FILES
from app.core.sql import Question, Statement, ask
from app.core.tables import utcnow

_COLUMNS = "(version_id, name, blob_sha256, size_bytes, media_type, created_at)"
_FILES = ", ".join(f"'{name}'" for name in EXPORT_FILES.values())
_SELECT = ("SELECT e.version_id, e.format || '.zip', a.blob_sha256, a.size_bytes, a.media_type, :now "
           f"FROM model_version_exports AS e JOIN artifacts AS a ON a.job_id = e.job_id AND a.name IN ({_FILES}) "
           "WHERE e.job_id = :job_id")
_SET = ("ON CONFLICT (version_id, name) DO UPDATE SET blob_sha256 = excluded.blob_sha256, "
        "size_bytes = excluded.size_bytes, media_type = excluded.media_type, created_at = excluded.created_at")
# The same on both databases: SQLite reads `INSERT ... SELECT ... ON CONFLICT` as an upsert when the SELECT has a
# WHERE (else it would take ON CONFLICT for a join's ON), and this one has.
_KEEP = Statement(text(f"INSERT INTO model_version_artifacts {_COLUMNS} {_SELECT} {_SET}"))


def keep_verified_export(executor: Session | Connection, *, job_id: str) -> Any:
    """Make the export job's file (stored already in this transaction) an artifact of its version; no row changes
    for a job that is not a registry export."""
    ask(executor, Question(_KEEP, {"job_id": job_id, "now": utcnow()}))
