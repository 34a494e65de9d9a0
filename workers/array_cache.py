"""Worker-local copies of datasets by sha256, read memory-mapped, bounded in bytes (least recently used out).

A dataset is fetched from SQL once per worker machine; every job after that maps the same file, so two
jobs on the same data read nothing from SQL and share one copy in the page cache. `.npz` members are
unpacked to plain `.npy` files once, because numpy can memory-map only those. Replacing files by rename
and unlinking whole entries keeps this safe for several worker processes sharing one cache directory:
a mapped file that is evicted stays readable to whoever has it mapped. Arrays are mapped copy-on-write
(`mmap_mode="c"`): writable for numpy's DLPack export (workers/mapped_tensors.py), while a write, were there
one, would go to a private page and never reach the file other jobs map.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.core.blobs import iter_chunks
from app.core.database import session_scope
from workers.jobstate import retrying

log = logging.getLogger("kerasd.worker")


class ArrayCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.fetched_from_sql = 0  # blobs read from SQL by this process (for tests and benchmarks)
        self._clock = 0.0

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
        if path.exists():
            self._mark_used(path)
            return path
        self._fetch(path, sha256)
        self._mark_used(path)
        self.fetched_from_sql += 1
        log.info("dataset blob %s fetched from SQL into the cache (%d bytes)", sha256, path.stat().st_size)
        self.evict(keep=sha256)
        return path

    @retrying
    def _fetch(self, path: Path, sha256: str) -> None:
        # Whole again on a retry: the write goes to a temporary file, renamed only once complete.
        with session_scope() as session:
            self._atomic_write(path, iter_chunks(session, sha256))

    def _mark_used(self, path: Path) -> None:
        """An entry's mtime is its last use; kept strictly increasing, as file timestamps can be coarser
        than the time between two uses."""
        self._clock = max(time.time(), self._clock + 0.001)
        os.utime(path, (self._clock, self._clock))

    def array(self, ref: dict[str, Any]) -> np.ndarray:
        path = self.blob_path(ref["sha256"], ref["format"])
        if ref["format"] == "npy":
            return np.load(path, mmap_mode="c", allow_pickle=False)
        member = self.root / ref["sha256"] / f"{ref['array']}.npy"
        if not member.exists():
            member.parent.mkdir(exist_ok=True)
            with zipfile.ZipFile(path) as archive, archive.open(f"{ref['array']}.npy") as stream:
                self._atomic_write(member, iter(lambda: stream.read(1024 * 1024), b""))
            self.evict(keep=ref["sha256"])
        return np.load(member, mmap_mode="c", allow_pickle=False)

    def _entries(self) -> dict[str, tuple[float, int, list[Path]]]:
        """sha256 → (last use, bytes, paths) for everything in the cache."""
        entries: dict[str, tuple[float, int, list[Path]]] = {}
        for path in self.root.iterdir():
            if path.name.startswith(".partial-"):
                continue
            sha = path.name.split(".", 1)[0]
            files = list(path.rglob("*")) if path.is_dir() else [path]
            size = sum(f.stat().st_size for f in files if f.is_file())
            used = path.stat().st_mtime if path.is_file() else 0.0
            last, total, paths = entries.get(sha, (0.0, 0, []))
            entries[sha] = (max(last, used), total + size, [*paths, path])
        return entries

    def evict(self, keep: str | None = None) -> list[str]:
        """Drop least recently used entries until the cache fits its bound; the evicted sha256s."""
        if self.max_bytes is None:
            return []
        entries = self._entries()
        total = sum(size for _, size, _ in entries.values())
        evicted = []
        for sha, (_, size, paths) in sorted(entries.items(), key=lambda item: item[1][0]):
            if total <= self.max_bytes:
                break
            if sha == keep:
                continue
            for path in paths:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            total -= size
            evicted.append(sha)
        return evicted
