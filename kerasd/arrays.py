"""Numpy arrays as the files the API stores: `.npy` for one array, `.npz` for named arrays; CSV files (with a
header row) as they are, which the server turns into arrays `x` and `y`.

Files are written to a temporary file (never whole in memory twice) and hashed, so an upload the server
already holds can be skipped. `.npz` files are written with fixed zip timestamps: the same arrays always
give the same bytes, hence the same sha256.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass
class PreparedFile:
    file: BinaryIO
    filename: str
    sha256: str
    size: int
    owned: bool = True

    def close(self) -> None:
        if self.owned:
            self.file.close()


def as_array(value: Any, what: str = "array") -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a TensorFlow / JAX tensor
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.hasobject or array.dtype.kind not in "biufc":
        raise TypeError(f"{what} has dtype {array.dtype}; kerasd stores numeric arrays only "
                        "(bool, int, uint, float, complex)")
    return array


def sha256_of(fileobj: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fileobj.seek(0)
    while chunk := fileobj.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return digest.hexdigest(), size


def write_npz(target: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_csv_header(path: Path) -> list[str]:
    """The CSV's column names. The server reads the first row as the header, so a first row of numbers (data,
    not names) would be lost: refused with what to do."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = next(csv.reader(handle), None)
    if not first:
        raise ValueError(f"{path} is empty; a CSV dataset needs a header row naming its columns, then data rows")
    if all(_is_number(cell.strip()) for cell in first):
        shown = ",".join(first[:6]) + (",..." if len(first) > 6 else "")
        raise ValueError(f"{path} is neither .npy nor .npz, and as a CSV it has no header row: its first row is "
                         f"numbers ({shown}), which the server would take for the column names, losing that row of "
                         "data. Add a header row naming the columns (e.g. f1,f2,label), then choose them with "
                         "x_columns / y_columns.")
    return [cell.strip() for cell in first]


def prepare(data: Any, *, filename: str | None = None) -> PreparedFile:
    """A file for `POST /v1/datasets` from an array, a dict of named arrays, or a .npy/.npz/.csv path."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        suffix = path.suffix.lower()
        if suffix not in (".npy", ".npz", ".csv"):
            raise ValueError(f"{path} is not .npy, .npz or .csv; save arrays with np.save or np.savez")
        if suffix == ".csv":
            check_csv_header(path)
        handle = path.open("rb")
        digest, size = sha256_of(handle)
        return PreparedFile(handle, filename or path.name, digest, size)
    spool = tempfile.TemporaryFile()
    try:
        if isinstance(data, Mapping):
            arrays = {}
            for name, value in data.items():
                if not isinstance(name, str) or not _NAME.match(name):
                    raise ValueError(f"array name {name!r} must match [A-Za-z0-9_.-]{{1,100}}")
                arrays[name] = as_array(value, f"array {name!r}")
            if not arrays:
                raise ValueError("no arrays to upload")
            write_npz(spool, arrays)
            default_name = "arrays.npz"
        else:
            np.lib.format.write_array(spool, as_array(data), allow_pickle=False)
            default_name = "array.npy"
        digest, size = sha256_of(spool)
    except BaseException:
        spool.close()
        raise
    return PreparedFile(spool, filename or default_name, digest, size)


def load(content: bytes | BinaryIO, fmt: str) -> np.ndarray | dict[str, np.ndarray]:
    """Arrays back from downloaded `.npy` / `.npz` bytes (never with pickle)."""
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    if fmt == "npz":
        with np.load(stream, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    return np.load(stream, allow_pickle=False)
