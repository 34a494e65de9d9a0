"""Dataset uploads stored as they stream in (app/datasets/upload_receiver.py, app/core/blob_writer.py): files of several
storage chunks, form fields after the file, bad files found mid-stream, malformed forms; nothing of a refused
upload stays behind, provisional chunks included."""

from __future__ import annotations

import io

import numpy as np
from sqlalchemy import select

from tests.seed import npy_bytes, npz_bytes, upload
from tests.test_bad_input import assert_problem, counts

CHUNK = 1024 * 1024  # KERASD_CHUNK_BYTES's default, which the test API runs with


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "kerasdtestboundary") -> tuple[bytes, dict]:
    """A multipart body with its parts in the order given: (field name, filename or None, content)."""
    body = io.BytesIO()
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        body.write(content + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def chunks_of(sha256: str) -> list[int]:
    from app.core.database import get_sessionmaker
    from app.core.tables import BlobChunk

    with get_sessionmaker()() as session:
        return [len(data) for data in session.scalars(
            select(BlobChunk.data).where(BlobChunk.blob_sha256 == sha256).order_by(BlobChunk.seq))]


def test_a_file_of_several_chunks_comes_back_whole_with_its_fields_after_it(client):
    array = np.random.default_rng(4).random((3 * CHUNK // 4 // 64 + 5, 64), dtype="float32")  # ~3 MiB
    content = npy_bytes(array)
    body, headers = multipart([("file", "big.npy", content), ("name", None, b"late name")])
    response = client.post("/v1/datasets", content=body, headers=headers)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["name"] == "late name" and dataset["size_bytes"] == len(content)
    assert dataset["arrays"] == [{"name": "big", "shape": list(array.shape), "dtype": "float32"}]
    sizes = chunks_of(dataset["sha256"])
    assert sizes[:-1] == [CHUNK] * (len(sizes) - 1) and sum(sizes) == len(content)
    assert client.get(f"/v1/datasets/{dataset['id']}/content").content == content

    again = upload(client, "again.npy", content).json()
    assert again["sha256"] == dataset["sha256"] and again["id"] != dataset["id"]
    assert chunks_of(dataset["sha256"]) == sizes


def test_an_npz_of_several_chunks_is_checked_at_its_end(client):
    arrays = {"x": np.random.default_rng(5).random((20_000, 20), dtype="float32"), "y": np.arange(20_000)}
    dataset = upload(client, "pair.npz", npz_bytes(**arrays)).json()
    assert {a["name"]: a["shape"] for a in dataset["arrays"]} == {"x": [20_000, 20], "y": [20_000]}
    back = np.load(io.BytesIO(client.get(f"/v1/datasets/{dataset['id']}/content").content))
    np.testing.assert_array_equal(back["x"], arrays["x"])


def test_bad_files_of_several_chunks_leave_nothing_stored(client):
    before = counts()
    whole = npy_bytes(np.ones((CHUNK // 100, 72), dtype="float32"))  # ~2.9 MiB
    assert_problem(upload(client, "cut.npy", whole[:-CHUNK]), 422, "corrupt")
    assert_problem(upload(client, "long.npy", whole + b"\0" * 10), 422, "corrupt")
    objects = npy_bytes(np.array([str(i) * 30 for i in range(40_000)], dtype=object), allow_pickle=True)
    assert len(objects) > 2 * CHUNK
    assert_problem(upload(client, "evil.npy", objects), 422, "pickle")
    broken = npz_bytes(x=np.ones((CHUNK // 2, 2), dtype="float32"))
    assert_problem(upload(client, "broken.npz", broken[: len(broken) // 2] + broken[len(broken) // 2 + 1:]), 422)
    with_columns = multipart([("x_columns", None, b"a"), ("file", "x.npy", whole)])
    assert_problem(client.post("/v1/datasets", content=with_columns[0], headers=with_columns[1]), 422, "CSV")
    assert counts() == before


def test_malformed_forms_are_refused(client):
    before = counts()
    no_file = multipart([("name", None, b"only a name")])
    assert_problem(client.post("/v1/datasets", content=no_file[0], headers=no_file[1]), 422, "'file'")
    two = multipart([("file", "a.npy", npy_bytes(np.ones(3))), ("file", "b.npy", npy_bytes(np.ones(4)))])
    assert_problem(client.post("/v1/datasets", content=two[0], headers=two[1]), 422, "more than one")
    long_name = multipart([("name", None, b"n" * 201), ("file", "a.npy", npy_bytes(np.ones(3)))])
    assert_problem(client.post("/v1/datasets", content=long_name[0], headers=long_name[1]), 422, "'name'")
    assert_problem(client.post("/v1/datasets", content=b"\x93NUMPY", headers={"content-type": "application/x-npy"}),
                   415, "multipart")
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    assert_problem(client.post("/v1/datasets", content=b"--abc\r\nnonsense", headers=headers), 422)
    assert counts() == before
