"""What refusing an .npz bomb costs the API: CPU seconds of the check an upload goes through, before and after
members were checked from the zip directory.

A bz2 member of N MiB of zeros (default 2048: the 1.8 KB bomb that was accepted as a 2.15 GB array) and a deflate
member whose directory entry claims 4 GiB. "Before" is what the API did with an .npz (app/datasets/array_files.py
until its directory check): open every member and read it to the end to verify its CRC. "After" is
`npz_declared_bytes`, which refuses from the directory. In-process (no HTTP): the API's own CPU for the check.

    .venv/bin/python -m bench.npz_bombs [--mib 2048]
"""

from __future__ import annotations

import argparse
import io
import struct
import time
import zipfile

import numpy as np

from app.datasets.array_files import ArrayFileError, npz_declared_bytes


def bz2_bomb(mib: int) -> bytes:
    """An .npz whose one member is `mib` MiB of float32 zeros compressed with bz2, written a chunk at a time."""
    count = mib * 1024**2 // 4
    out = io.BytesIO()
    with (zipfile.ZipFile(out, "w", compression=zipfile.ZIP_BZIP2, compresslevel=9) as archive,
          archive.open("x.npy", "w", force_zip64=True) as member):
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (count,)})
        chunk, left = bytes(64 * 1024**2), count * 4
        while left:
            member.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
    return out.getvalue()


def lying_deflate() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", bytes(1024**2))
    content = out.getvalue()
    at = content.rindex(b"PK\x01\x02") + 24
    return content[:at] + struct.pack("<I", 2**32 - 1) + content[at + 4:]


def before(content: bytes) -> None:
    """The old check: every member read to its end."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for member in archive.infolist():
            try:
                with archive.open(member) as stream:
                    while stream.read(1024 * 1024):
                        pass
            except (zipfile.BadZipFile, OSError, EOFError):
                return


def after(content: bytes) -> None:
    try:
        npz_declared_bytes(io.BytesIO(content))
    except ArrayFileError:
        return
    raise AssertionError("the bomb was not refused")


def cpu_seconds(check, content: bytes) -> float:
    started = time.process_time()
    check(content)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=2048)
    args = parser.parse_args()
    for name, content in ((f"bz2, {args.mib} MiB of zeros", bz2_bomb(args.mib)),
                          ("deflate claiming 4 GiB", lying_deflate())):
        old, new = cpu_seconds(before, content), cpu_seconds(after, content)
        print(f"{name} ({len(content):,} bytes): before {old:.3f} s CPU, after {new * 1000:.3f} ms CPU")


if __name__ == "__main__":
    main()
