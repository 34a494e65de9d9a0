"""Worker-local copies of datasets by sha256, read memory-mapped.

A dataset is fetched from SQL once per worker machine; every job after that maps the same file. `.npz`
members are unpacked to plain `.npy` files once, because numpy can memory-map only those.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.blobs import iter_chunks
from app.db import session_scope


class ArrayCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _atomic_write(self, target: Path, chunks: Any) -> None:
        # Write beside the target and rename, so a crash never leaves a half file under the real name.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def blob_path(self, sha256: str, fmt: str) -> Path:
        path = self.root / f"{sha256}.{fmt}"
        if not path.exists():
            with session_scope() as session:
                self._atomic_write(path, iter_chunks(session, sha256))
        return path

    def array(self, ref: dict[str, Any]) -> np.ndarray:
        path = self.blob_path(ref["sha256"], ref["format"])
        if ref["format"] == "npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        member = self.root / ref["sha256"] / f"{ref['array']}.npy"
        if not member.exists():
            member.parent.mkdir(exist_ok=True)
            with zipfile.ZipFile(path) as archive, archive.open(f"{ref['array']}.npy") as stream:
                self._atomic_write(member, iter(lambda: stream.read(1024 * 1024), b""))
        return np.load(member, mmap_mode="r", allow_pickle=False)
