"""Uploads that ask for far more work or storage than their bytes: .npz bombs and CSV column amplification.

Each attack is one tenant's, against a real API that requires keys (tests/conftest.py `keyed_api`) on the
session's PostgreSQL: the attacker's status is asserted, and so is another tenant's request answered as usual.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from tests.seed import npy_bytes, npz_bytes, upload
from tests.tenancy import keyed_client, make_tenant
from tests.test_bad_input import assert_problem, counts


@pytest.fixture(scope="module")
def url(keyed_api) -> str:
    return keyed_api[0]


def zipped(members: dict[str, bytes], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def declaring(content: bytes, file_size: int) -> bytes:
    """The zip with its (one) member's expanded size in the central directory changed to `file_size`."""
    at = content.rindex(b"PK\x01\x02") + 24  # central directory entry: uncompressed size at offset 24
    return content[:at] + struct.pack("<I", file_size) + content[at + 4:]


def other_tenant_is_served(url: str) -> None:
    """Another tenant's upload and read, answered as usual."""
    _tenant, key = make_tenant("bystander")
    with keyed_client(url, key) as client:
        stored = upload(client, "mine.npz", npz_bytes(a=np.arange(10, dtype="float32")))
        assert stored.status_code == 201, stored.text
        assert client.get(f"/v1/datasets/{stored.json()['id']}").status_code == 200


def test_npz_bombs_are_refused_from_the_zip_directory_and_charged_expanded(url):
    _tenant, key = make_tenant("bomber", max_stored_bytes=100 * 1024**2)
    before = counts()
    with keyed_client(url, key) as client:
        zeros = npy_bytes(np.zeros(1024**2 // 4, dtype="float32"))
        # bz2 (and lzma) expand at a few MB/s of CPU: a 1,771-byte member held 2 GB.
        body = assert_problem(upload(client, "bomb.npz", zipped({"x.npy": zeros}, zipfile.ZIP_BZIP2)), 422,
                              "'x.npy'", "bz2", "deflate")
        assert body["title"] == "Invalid Array File"
        assert_problem(upload(client, "bomb.npz", zipped({"x.npy": zeros}, zipfile.ZIP_LZMA)), 422, "lzma")
        # A member claiming to expand far more than deflate can: refused before a byte is expanded.
        lying = declaring(zipped({"x.npy": zeros}, zipfile.ZIP_DEFLATED), 2**32 - 1)
        assert_problem(upload(client, "bomb.npz", lying), 422, "'x.npy'", "expands", "times")
        # 400 MB of zeros deflate to 400 KB: within the ratio deflate achieves, but charged at 400 MB, over
        # this tenant's 100 MB quota, and refused before it is expanded.
        big = zipped({"x.npy": npy_bytes(np.zeros(100 * 1024**2, dtype="float32"))}, zipfile.ZIP_DEFLATED)
        assert len(big) < 1024**2
        refused = assert_problem(upload(client, "big.npz", big), 413, "quota")
        assert refused["quota_bytes"] == 100 * 1024**2
        assert counts() == before
        # What fits is charged at its expanded size.
        small = zipped({"x.npy": npy_bytes(np.zeros(1024**2, dtype="float32"))}, zipfile.ZIP_DEFLATED)
        stored = upload(client, "small.npz", small)
        assert stored.status_code == 201, stored.text
        usage = client.get("/v1/tenant").json()
    assert usage["usage"]["stored_bytes"] >= 4 * 1024**2 > len(small)
    other_tenant_is_served(url)


def test_csv_columns_named_twice_are_refused_and_the_parsed_size_meets_the_quota(url):
    _tenant, key = make_tenant("amplifier", max_stored_bytes=1024**2)
    before = counts()
    content = b"a,b,label\n" + b"1,2,0\n" * 100
    with keyed_client(url, key) as client:
        # One column named 20,000 times made a 4 KB file a 160 MB array.
        body = assert_problem(client.post("/v1/datasets", files={"file": ("x.csv", content)},
                                          data={"x_columns": ",".join(["a"] * 20_000), "y_columns": "label"}),
                              422, "x_columns", "'a'", "more than once")
        assert body["title"] == "Invalid Array File"
        # 64 columns of "0," parse to 4 bytes a field: a 0.9 MB file is 1.8 MB of float32, past the quota.
        wide = ",".join(f"c{i}" for i in range(64)).encode() + b"\n" + (b",".join([b"0"] * 64) + b"\n") * 7_000
        assert len(wide) < 1024**2
        assert_problem(client.post("/v1/datasets", files={"file": ("wide.csv", wide)}), 413, "quota")
    assert counts() == before
    other_tenant_is_served(url)
