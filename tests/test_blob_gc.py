"""Stored bytes nothing refers to any more are collected; bytes anything still refers to never are."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time

import httpx
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



def upload_slowly_under_collection(api_url: str, content: bytes, *, pause_s: float,
                                   grace_s: float) -> tuple[httpx.Response, float, bool]:
    """POST /v1/datasets with `content` sent a storage chunk at a time, `pause_s` between chunks, while the blob
    collection runs every 0.2 s with `grace_s`: (the answer, the upload's seconds, whether the collector saw the
    upload's partial blob)."""
    from app.core.blob_gc import collect_blobs
    from app.core.database import get_sessionmaker
    from app.core.settings import get_settings
    from app.core.tables import Blob

    piece = get_settings().chunk_bytes
    boundary = "kerasd-slow-upload"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.npy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def body():
        yield head
        for start in range(0, len(content), piece):
            if start:
                time.sleep(pause_s)
            yield content[start:start + piece]
        yield f"\r\n--{boundary}--\r\n".encode()

    answer: list[httpx.Response] = []

    def send():
        with httpx.Client(base_url=api_url, timeout=120) as http:
            answer.append(http.post("/v1/datasets", content=body(),
                                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}))

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    partial_seen = False
    while sender.is_alive():
        collect_blobs(grace_s=grace_s)
        with get_sessionmaker()() as session:
            partial_seen |= bool(session.scalar(select(func.count()).select_from(Blob)
                                                .where(Blob.sha256.like("partial-%"))))
        time.sleep(0.2)
    sender.join()
    return answer[0], time.monotonic() - started, partial_seen


def test_an_upload_slower_than_the_grace_keeps_its_chunks_while_the_collector_runs(api_url):
    """A file sent in 1 MiB chunks 0.6 s apart, over twice the collection's 3 s grace, while the collection runs:
    the upload's partial blob is dated by its last chunk, so it is never taken and the file is stored whole
    (before, the collection deleted it 3 s after its first chunk and the next chunk failed on its foreign key).
    A client that stops sending for longer than the grace loses its chunks: a 409 saying so, nothing stored."""
    from app.core.settings import get_settings

    content = npy_bytes(np.random.default_rng(5).random(3 * get_settings().chunk_bytes, dtype="float32"))
    answer, seconds, partial_seen = upload_slowly_under_collection(api_url, content, pause_s=0.6, grace_s=3)
    assert seconds > 6 and partial_seen, "the upload must outlast the grace while the collector sees it"
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    assert dataset["sha256"] == hashlib.sha256(content).hexdigest()
    with httpx.Client(base_url=api_url, timeout=120) as http:
        assert http.get(f"/v1/datasets/{dataset['id']}/content").content == content

    other = npy_bytes(np.random.default_rng(6).random(get_settings().chunk_bytes // 2, dtype="float32"))
    answer, _, partial_seen = upload_slowly_under_collection(api_url, other, pause_s=1.5, grace_s=0.5)
    assert partial_seen and answer.status_code == 409, answer.text
    assert answer.json()["title"] == "Upload Collected" and "KERASD_BLOB_GC_GRACE_S" in answer.json()["detail"]
    assert stored(hashlib.sha256(other).hexdigest()) == (0, 0)
