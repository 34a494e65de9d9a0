"""Uploaded `.weights.h5` files, to warm-start a job from."""

from __future__ import annotations

from typing import BinaryIO

import h5py

from app.core.blobs import store_file
from app.core.errors import Problem, found
from app.core.quotas import check_storage, lock_tenant
from app.core.tables import WeightsFile
from app.system.metrics import UPLOAD_BYTES
from app.weights import repository


def check_weights_file(fileobj: BinaryIO) -> None:
    """A Keras weights file is plain HDF5 with no links out: refuse external links and virtual datasets
    (an HDF5 file can point at any path on the reader's disk)."""
    fileobj.seek(0)
    if fileobj.read(8) != b"\x89HDF\r\n\x1a\n":
        raise Problem(422, "Invalid Weights File", "The file is not HDF5; upload what "
                      "model.save_weights('model.weights.h5') writes.")
    fileobj.seek(0)
    problems: list[str] = []
    try:
        with h5py.File(fileobj, "r") as h5:
            def visit(name: str, link: object) -> None:
                if isinstance(link, h5py.ExternalLink | h5py.SoftLink):
                    problems.append(f"{name} is a link")
                elif isinstance(link, h5py.HardLink):
                    obj = h5.get(name)
                    if isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
                        problems.append(f"{name} reads data from outside the file")

            h5.visititems_links(visit)
    except OSError as exc:
        raise Problem(422, "Invalid Weights File", f"The HDF5 file cannot be read: {exc}") from None
    if problems:
        found = "; ".join(problems[:3])
        raise Problem(422, "Unsafe Weights File", f"The weights file refers outside itself ({found}); save "
                      "plain weights with model.save_weights.")
    fileobj.seek(0)


def create_weights(session, *, tenant_id: str, fileobj: BinaryIO, filename: str, chunk_bytes: int) -> WeightsFile:
    if not filename.endswith(".weights.h5"):
        raise Problem(422, "Invalid Weights File", f"{filename!r}: Keras 3 saves and loads weights only as "
                      "*.weights.h5 (model.save_weights('model.weights.h5')).")
    check_storage(session, tenant_id, fileobj.seek(0, 2))
    check_weights_file(fileobj)
    blob = store_file(session, fileobj=fileobj, chunk_bytes=chunk_bytes)
    lock_tenant(session, tenant_id)
    check_storage(session, tenant_id, blob.size_bytes)
    row = repository.insert_weights(session, tenant_id=tenant_id, name=filename[:200], blob_sha256=blob.sha256,
                                    size_bytes=blob.size_bytes)
    UPLOAD_BYTES.labels(kind="weights").inc(blob.size_bytes)
    return row


def owned_weights(session, *, tenant_id: str, weights_id: str) -> WeightsFile | None:
    """The tenant's uploaded weights file, or None."""
    return repository.get_weights(session, tenant_id=tenant_id, weights_id=weights_id)


def get_weights(session, *, tenant_id: str, weights_id: str) -> WeightsFile:
    return found(owned_weights(session, tenant_id=tenant_id, weights_id=weights_id), "weight", weights_id)
