"""Stored bytes nothing refers to any more are collected; bytes anything still refers to never are."""

from __future__ import annotations

import json
import subprocess

import numpy as np
from sqlalchemy import func, select

from tests.seed import npy_bytes, upload
from tests.services import kerasd_command


def stored(sha256: str) -> tuple[int, int]:
    """(blob rows, chunk rows) under a sha256."""
    from app.core.database import get_sessionmaker
    from app.core.tables import Blob, BlobChunk

    with get_sessionmaker()() as session:
        return (session.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == sha256)),
                session.scalar(select(func.count()).select_from(BlobChunk).where(BlobChunk.blob_sha256 == sha256)))


def test_every_foreign_key_to_blobs_is_a_reference_the_collector_knows():
    from app.core.blob_gc import BLOB_REFERENCES
    from app.core.tables import Base

    pointing = {(fk.parent.table.name, fk.parent.name) for table in Base.metadata.tables.values()
                for fk in table.foreign_keys if fk.column.table.name == "blobs" and table.name != "blob_chunks"}
    assert pointing == {(column.table.name, column.name) for column in BLOB_REFERENCES}


def test_a_deleted_datasets_bytes_are_collected_once_nothing_refers_to_them(client, server_env):
    from app.core.blob_gc import collect_blobs

    content = npy_bytes(np.random.default_rng().random((300, 40), dtype="float32"))  # several 64 KiB chunks
    first = upload(client, "a.npy", content).json()
    second = upload(client, "b.npy", content).json()
    sha256 = first["sha256"]
    assert second["sha256"] == sha256 and first["id"] != second["id"]
    blob_rows, chunk_rows = stored(sha256)
    assert blob_rows == 1 and chunk_rows >= 1

    assert client.delete(f"/v1/datasets/{first['id']}").status_code == 204
    collect_blobs(grace_s=0)
    assert stored(sha256) == (1, chunk_rows), "the other dataset still holds these bytes"
    assert client.get(f"/v1/datasets/{second['id']}/content").content == content

    assert client.delete(f"/v1/datasets/{second['id']}").status_code == 204
    assert collect_blobs(grace_s=3600).blobs == 0, "the grace period spares young blobs"
    assert stored(sha256) == (1, chunk_rows)

    ran = subprocess.run(kerasd_command("admin", "gc-blobs", "--grace-s", "0", "--json"), env=server_env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["blobs"] >= 1 and report["bytes"] >= len(content)
    assert stored(sha256) == (0, 0)

    # The same bytes again are stored anew.
    again = upload(client, "c.npy", content).json()
    assert again["sha256"] == sha256 and stored(sha256) == (1, chunk_rows)
