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

from app.datasets.array_files import ArrayFileError, Limits, check_npz_prefix
from app.datasets.csv_arrays import check_csv_header
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
        # One column named 20,000 times made a 4 KB file a 160 MB array: past the column limit (10,000).
        body = assert_problem(client.post("/v1/datasets", files={"file": ("x.csv", content)},
                                          data={"x_columns": ",".join(["a"] * 20_000), "y_columns": "label"}),
                              422, "x_columns", "20,001 columns (2 distinct)", "limit is 10,000")
        assert body["title"] == "Invalid Array File"
        # Within the limit, a column named twice is stored twice: refused too.
        assert_problem(client.post("/v1/datasets", files={"file": ("x.csv", content)},
                                   data={"x_columns": "a,b, a", "y_columns": "label"}), 422, "['a'] more than once")
        # 64 columns of "0," parse to 4 bytes a field: a 0.9 MB file is 1.8 MB of float32, past the quota.
        wide = ",".join(f"c{i}" for i in range(64)).encode() + b"\n" + (b",".join([b"0"] * 64) + b"\n") * 7_000
        assert len(wide) < 1024**2
        assert_problem(client.post("/v1/datasets", files={"file": ("wide.csv", wide)}), 413, "quota")
    assert counts() == before
    other_tenant_is_served(url)


class Unseekable(io.RawIOBase):
    """A stream zipfile cannot seek back in: it writes each member's sizes after its data (a data descriptor)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk) -> int:
        self.data += chunk
        return len(chunk)


def test_an_npz_is_checked_from_its_first_bytes_as_it_arrives():
    """What the upload checks from the first storage chunk: the local headers of the members that begin in it. No
    file np.savez or np.savez_compressed writes is refused by it; a bomb is, from any member whose header it holds."""
    arrays = {"x": np.random.default_rng(0).random((300, 20)), "y": np.arange(300)}
    compressed = io.BytesIO()
    np.savez_compressed(compressed, **arrays)
    streamed = Unseekable()
    with zipfile.ZipFile(streamed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", npy_bytes(np.zeros(1000, dtype="float32")))
    for fine in (npz_bytes(**arrays), compressed.getvalue(), bytes(streamed.data), b"PK", b"not a zip at all"):
        check_npz_prefix(fine)
        check_npz_prefix(fine[:100])  # a header cut off by the chunk's end is left to the whole file's check
    zeros = npy_bytes(np.zeros(1024**2 // 4, dtype="float32"))
    with pytest.raises(ArrayFileError, match="bz2"):
        check_npz_prefix(zipped({"x.npy": zeros}, zipfile.ZIP_BZIP2))
    # The bomb second, behind an honest member: still within the first bytes, still refused.
    second = io.BytesIO()
    with zipfile.ZipFile(second, "w") as archive:
        archive.writestr("a.npy", npy_bytes(np.arange(10)), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("b.npy", zeros, compress_type=zipfile.ZIP_LZMA)
    with pytest.raises(ArrayFileError, match=r"'b\.npy' is compressed with lzma"):
        check_npz_prefix(second.getvalue())
    # Sizes a member declares in its zip64 extra field (as np.savez writes them): over the ratio, or the limit.
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("x.npy", "w", force_zip64=True) as member:
        member.write(bytes(64 * 1024**2))
    with pytest.raises(ArrayFileError, match="expands"):
        check_npz_prefix(bomb.getvalue(), Limits(max_compression_ratio=100))
    with pytest.raises(ArrayFileError, match="the limit is 1,048,576 bytes per array"):
        check_npz_prefix(bomb.getvalue(), Limits(max_expanded_bytes=1024**2))
    check_npz_prefix(bomb.getvalue())


def test_a_csv_is_checked_from_its_header_as_it_arrives():
    check_csv_header(b"a,b,label\n1,2,0\n", x_columns="a,b", y_columns="label", max_columns=10)
    with pytest.raises(ArrayFileError, match="has no column"):
        check_csv_header(b"a,b,label\r\n1,2,0\r\n", x_columns="c", y_columns=None, max_columns=10)
    with pytest.raises(ArrayFileError, match="3 columns; the limit is 2"):
        check_csv_header(b"\xef\xbb\xbfa,b,label\n", x_columns=None, y_columns=None, max_columns=2)
    # A header not complete in the first bytes, quoted, or not UTF-8: left to the whole file's read.
    for later in (b"a,b,lab", b'"a\nb",c\n1,2\n', b"a,\xe9\n1,2\n"):
        check_csv_header(later, x_columns="zzz", y_columns=None, max_columns=10)
