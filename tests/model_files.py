"""Saved Keras model files for upload tests, honest and hostile, made with Keras and h5py in the test process."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def small_model():
    """The tutorial's §5.3 model: Dense 10 softmax on 72 inputs, twice."""
    import keras

    return keras.Sequential([keras.Input((72,)), keras.layers.Dense(10, activation="softmax", name="first"),
                             keras.layers.Dense(10, activation="softmax", name="second")], name="all_model")


def saved(model: Any, path: Path) -> bytes:
    model.save(path)
    return path.read_bytes()


def rewrite_archive(archive: bytes, *, config: dict[str, Any] | None = None,
                    weights: Callable[[Any], None] | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    """A `.keras` archive with its config.json replaced, its model.weights.h5 changed by `weights(h5file)`,
    or extra members added."""
    import h5py

    source = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "config.json" and config is not None:
                data = json.dumps(config).encode()
            if info.filename == "model.weights.h5" and weights is not None:
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "a") as h5:
                    weights(h5)
                data = buffer.getvalue()
            target.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def config_of(archive: bytes) -> dict[str, Any]:
    return json.loads(zipfile.ZipFile(io.BytesIO(archive)).read("config.json"))


def external_storage(secret: Path) -> Callable[[Any], None]:
    """A dataset whose bytes HDF5 reads from another file (CVE-2026-1669)."""
    size = secret.stat().st_size

    def change(h5: Any) -> None:
        h5.create_dataset("layers/dense/vars/leak", shape=(size,), dtype="u1", external=[(str(secret), 0, size)])

    return change


def external_link(secret: Path) -> Callable[[Any], None]:
    def change(h5: Any) -> None:
        import h5py

        h5["layers/leak"] = h5py.ExternalLink(str(secret), "/")

    return change


def soft_link(h5: Any) -> None:
    """A name that HDF5 resolves to another path when read; Keras files use no links."""
    import h5py

    h5["layers/alias"] = h5py.SoftLink("/layers")


def virtual_dataset(source: Path) -> Callable[[Any], None]:
    def change(h5: Any) -> None:
        import h5py

        layout = h5py.VirtualLayout(shape=(10,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(source), "data", shape=(10,))
        h5.create_virtual_dataset("layers/virtual", layout)

    return change


def shape_bomb(h5: Any) -> None:
    """A chunked dataset that declares 10**15 elements and stores none (CVE-2026-0897)."""
    h5.create_dataset("layers/bomb", shape=(10**5, 10**5, 10**5), dtype="f4", chunks=(1, 1, 16))
