"""Reads what an uploaded .npy/.npz holds from its headers, without pickle and without loading the data.

An upload is untrusted: `np.load(allow_pickle=True)` would run code, so object arrays are refused, only
numeric and boolean dtypes are accepted, and every array's byte count must agree with its header (a
truncated or padded file is corrupt). An .npz's members are limited to stored and deflate, each to a declared
expanded size and compression ratio read from the zip directory before anything is expanded, and no member
yields more bytes than it declared (a zip bomb is refused in milliseconds instead of costing seconds of CPU).
The members' local headers in an upload's first chunk are checked the same way as they arrive, so a small bomb is
refused before any of it is stored or spooled.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

ACCEPTED_KINDS = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "float"}
ARRAY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class ArrayFileError(ValueError):
    """The file is not a valid numeric .npy/.npz; the message says what is wrong."""


@dataclass(frozen=True)
class ArrayInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Limits:
    max_rank: int = 8
    max_arrays: int = 256
    max_expanded_bytes: int = 8 * 1024**3
    max_compression_ratio: float = 1100.0


ACCEPTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
COMPRESSION_NAMES = {zipfile.ZIP_BZIP2: "bz2", zipfile.ZIP_LZMA: "lzma"}


def _check_rank(where: str, shape: tuple[int, ...], limits: Limits) -> None:
    if len(shape) > limits.max_rank:
        raise ArrayFileError(f"{where} has rank {len(shape)} (shape {list(shape)}); the limit is "
                             f"{limits.max_rank} dimensions")


def _read_header(fileobj: BinaryIO, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    try:
        version = np.lib.format.read_magic(fileobj)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fileobj)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fileobj)
        else:
            raise ArrayFileError(f"{where}: unsupported .npy format version {version}")
    except ArrayFileError:
        raise
    except Exception as exc:  # numpy raises ValueError/OSError/SyntaxError for garbage headers
        raise ArrayFileError(f"{where} is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise ArrayFileError(
            f"{where} holds Python objects (dtype {dtype}), which would need pickle to load; "
            "kerasd accepts numeric arrays only. Convert with arr.astype('float32') before np.save."
        )
    if dtype.kind not in ACCEPTED_KINDS or dtype.fields is not None:
        raise ArrayFileError(
            f"{where} has dtype {dtype}; kerasd accepts bool, integer and float arrays only."
        )
    return tuple(int(d) for d in shape), dtype, fileobj.tell()


def _check_size(where: str, shape: tuple[int, ...], dtype: np.dtype, data_offset: int, total: int) -> None:
    expected = data_offset + math.prod(shape) * dtype.itemsize
    if expected != total:
        raise ArrayFileError(
            f"{where} is corrupt: its header promises {expected} bytes for shape {list(shape)} of "
            f"{dtype}, but the file has {total}."
        )


def inspect_npy(fileobj: BinaryIO, *, name: str, total_size: int, limits: Limits = Limits()) -> list[ArrayInfo]:
    fileobj.seek(0)
    shape, dtype, offset = _read_header(fileobj, "the .npy file")
    _check_rank("the .npy file", shape, limits)
    _check_size("the .npy file", shape, dtype, offset, total_size)
    return [ArrayInfo(name=name, shape=shape, dtype=dtype.name)]


def check_npy_header(prefix: bytes, limits: Limits = Limits()) -> None:
    """Refuse a .npy from its first bytes (magic, dtype, rank), before the rest of it arrives."""
    shape, _dtype, _offset = _read_header(io.BytesIO(prefix), "the .npy file")
    _check_rank("the .npy file", shape, limits)


LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_SIGNATURE = b"PK\x03\x04"
ZIP64_EXTRA = 0x0001


def check_npz_prefix(prefix: bytes, limits: Limits = Limits()) -> None:
    """Refuse an .npz from the local headers of the members that begin in its first bytes (compression, declared
    size and ratio), before the rest arrives. The zip directory at the end is authoritative and checked again
    once the file is complete; a member whose sizes follow its data (a data descriptor) or that begins past
    `prefix` is left to that check."""
    offset = 0
    for _ in range(limits.max_arrays + 1):
        if prefix[offset:offset + 4] != LOCAL_SIGNATURE or offset + LOCAL_HEADER.size > len(prefix):
            return
        (_sig, _version, flags, method, _time, _date, _crc, compressed, expanded, name_length,
         extra_length) = LOCAL_HEADER.unpack_from(prefix, offset)
        start = offset + LOCAL_HEADER.size
        if start + name_length + extra_length > len(prefix):
            return
        member = zipfile.ZipInfo(prefix[start:start + name_length].decode("utf-8", "replace"))
        member.compress_type = method
        extra = prefix[start + name_length:start + name_length + extra_length]
        member.compress_size, member.file_size = _zip64_sizes(extra, compressed, expanded)
        if flags & 0x08:
            member.compress_size = member.file_size = 0  # sizes after the data: only its compression is known
        _check_member_size(member, limits)
        if flags & 0x08:
            return
        offset = start + name_length + extra_length + member.compress_size


def _zip64_sizes(extra: bytes, compressed: int, expanded: int) -> tuple[int, int]:
    """A local header's (compressed, expanded) sizes, from its zip64 extra field where the header says 0xFFFFFFFF
    (np.savez writes every member so)."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        if kind == ZIP64_EXTRA:
            fields = extra[at + 4 : at + 4 + min(size, 16)]
            values = [struct.unpack_from("<Q", fields, 8 * n)[0] for n in range(len(fields) // 8)]
            if expanded == 0xFFFFFFFF and values:
                expanded = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            break
        at += 4 + size
    return compressed, expanded


def npz_declared_bytes(fileobj: BinaryIO, limits: Limits = Limits()) -> int:
    """What an .npz's members claim to expand to, from its zip directory alone, each member's compression, size
    and ratio checked (0 when it is no zip: the inspection says what is wrong)."""
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        return 0
    for member in members[:limits.max_arrays]:
        _check_member_size(member, limits)
    return sum(member.file_size for member in members)


def inspect_npz(fileobj: BinaryIO, limits: Limits = Limits()) -> list[ArrayInfo]:
    fileobj.seek(0)
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise ArrayFileError(f"the .npz file is not a valid zip archive: {exc}") from None
    arrays: list[ArrayInfo] = []
    with archive:
        members = archive.infolist()
        if not members:
            raise ArrayFileError("the .npz file holds no arrays")
        if len(members) > limits.max_arrays:
            raise ArrayFileError(f"the .npz file holds {len(members)} arrays; the limit is {limits.max_arrays} "
                                 "per file")
        for member in members:
            _check_member_size(member, limits)
        for member in members:
            if not member.filename.endswith(".npy"):
                raise ArrayFileError(f"the .npz member {member.filename!r} is not a .npy array")
            name = member.filename[: -len(".npy")]
            if not ARRAY_NAME.match(name):
                raise ArrayFileError(
                    f"the .npz member {member.filename!r} has a name outside [A-Za-z0-9_.-] (1-100 chars)"
                )
            where = f"the array {name!r}"
            try:
                with archive.open(member) as stream:
                    shape, dtype, offset = _read_header(stream, where)
                    # Reading to the end makes zipfile verify the member's CRC; no more than the member declared
                    # is expanded (zipfile stops there too: this says so rather than relying on it).
                    expanded = stream.tell()
                    while chunk := stream.read(1024 * 1024):
                        expanded += len(chunk)
                        if expanded > member.file_size:
                            raise ArrayFileError(f"{where} in the .npz file expands past the {member.file_size:,} "
                                                 "bytes its zip entry declares")
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ArrayFileError(f"{where} in the .npz file is corrupt: {exc}") from None
            _check_rank(where, shape, limits)
            _check_size(where, shape, dtype, offset, member.file_size)
            arrays.append(ArrayInfo(name=name, shape=shape, dtype=dtype.name))
    return arrays


def _check_member_size(member: zipfile.ZipInfo, limits: Limits) -> None:
    """Refuse a member from its zip directory entry: its compression, declared size and ratio."""
    where = f"the .npz member {member.filename!r}"
    if member.compress_type not in ACCEPTED_COMPRESSION:
        method = COMPRESSION_NAMES.get(member.compress_type, f"method {member.compress_type}")
        raise ArrayFileError(f"{where} is compressed with {method}; kerasd accepts .npz members stored or "
                             "compressed with deflate only (np.savez or np.savez_compressed)")
    if member.file_size > limits.max_expanded_bytes:
        raise ArrayFileError(f"{where} expands to {member.file_size:,} bytes; the limit is "
                             f"{limits.max_expanded_bytes:,} bytes per array")
    ratio = member.file_size / max(member.compress_size, 1)
    if ratio > limits.max_compression_ratio:
        raise ArrayFileError(f"{where} expands {ratio:,.0f} times ({member.compress_size:,} bytes to "
                             f"{member.file_size:,}); the limit is {limits.max_compression_ratio:,.0f} times, "
                             "more than deflate achieves on any real array")
