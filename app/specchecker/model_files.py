"""Uploaded `.keras` and `.h5` whole models, inspected before Keras opens them (spec checker sandbox only).

A `.keras` file is a zip of config.json, metadata.json and model.weights.h5; a legacy `.h5` file keeps the
config in an attribute and the weights in datasets. Both can attack the reader: a config that names code
(the allowlist walk refuses it), an HDF5 dataset whose bytes live in another file (external storage,
virtual datasets, external links: arbitrary file reads, CVE-2026-1669), a dataset that declares an absurd
shape (memory exhaustion, CVE-2026-0897), an unknown compression filter (HDF5 would load a plugin
library for it), zip members with paths outside the archive, or zip bombs. All of that is checked here
with zipfile and h5py, reading metadata only; Keras loads the file only when nothing was found, with
`safe_mode=True` and `compile=False` (the training config is the job's business, not the file's).
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

import h5py
import keras

from app.specchecker import compat
from app.specchecker.building import catalog
from app.specchecker.model_check import check_budget, describe, failures_named
from app.specchecker.safety import check_config

# The members `model.save("x.keras")` writes; assets/ holds files of lookup layers.
ARCHIVE_FILES = frozenset({"config.json", "metadata.json", "model.weights.h5"})
MAX_CONFIG_BYTES = 64 * 1024 * 1024
# A member that inflates more than this much is a zip bomb, not weights (weights barely compress).
MAX_COMPRESSION_RATIO = 200
# HDF5's built-in filters and h5py's LZF; any other id would make HDF5 look for a plugin library.
ALLOWED_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
MAX_H5_OBJECTS = 100_000
MAX_H5_DEPTH = 32


class UnsafeFile(ValueError):
    """The uploaded file is refused before Keras reads it."""


def _weight_budget(max_params: int) -> int:
    """Elements a file may declare: the weights plus two optimizer slots each (Adam), plus some slack."""
    return 3 * max_params + 1_000_000


# --- HDF5 ----------------------------------------------------------------------------------------

def check_h5(h5: h5py.File, max_elements: int, where: str) -> int:
    """Refuse links out of the file, data stored elsewhere, non-numeric data, unknown filters and shapes
    beyond the budget. Links are looked at without following them. Returns the elements declared."""
    state = {"objects": 0, "elements": 0}

    def dataset(ds: h5py.Dataset, path: str) -> None:
        if ds.is_virtual:
            raise UnsafeFile(f"{where}:{path} is a virtual dataset that reads other files (CVE-2026-1669)")
        if ds.external:
            files = ", ".join(repr(entry[0]) for entry in ds.external[:3])
            raise UnsafeFile(f"{where}:{path} stores its data in external file(s) {files} (CVE-2026-1669)")
        if ds.dtype.kind not in "biuf":
            raise UnsafeFile(f"{where}:{path} holds {ds.dtype} data; Keras weights are numbers")
        plist = ds.id.get_create_plist()
        for index in range(plist.get_nfilters()):
            code = plist.get_filter(index)[0]
            if code not in ALLOWED_FILTERS:
                raise UnsafeFile(f"{where}:{path} uses HDF5 filter {code}, which would load a plugin library; "
                                 f"allowed: {', '.join(ALLOWED_FILTERS.values())}")
        state["elements"] += ds.size or 0
        if state["elements"] > max_elements:
            raise UnsafeFile(f"{where}:{path} declares shape {ds.shape}; the file's datasets declare more than "
                             f"{max_elements:,} elements, beyond the parameter budget (CVE-2026-0897)")

    def group(node: h5py.Group, path: str, depth: int) -> None:
        if depth > MAX_H5_DEPTH:
            raise UnsafeFile(f"{where}:{path} nests deeper than {MAX_H5_DEPTH} groups")
        for name in node:
            child = f"{path}/{name}"
            state["objects"] += 1
            if state["objects"] > MAX_H5_OBJECTS:
                raise UnsafeFile(f"{where} holds more than {MAX_H5_OBJECTS:,} objects")
            link = node.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise UnsafeFile(f"{where}:{child} is an external link to {link.filename!r} (CVE-2026-1669)")
            if not isinstance(link, h5py.HardLink):
                raise UnsafeFile(f"{where}:{child} is a {type(link).__name__}; Keras files use no links")
            obj = node[name]
            if isinstance(obj, h5py.Group):
                group(obj, child, depth + 1)
            elif isinstance(obj, h5py.Dataset):
                dataset(obj, child)
            else:
                raise UnsafeFile(f"{where}:{child} is a {type(obj).__name__}; Keras files hold groups and datasets")

    group(h5, "", 0)
    return state["elements"]


# --- .keras --------------------------------------------------------------------------------------

def _check_member(info: zipfile.ZipInfo, max_bytes: int) -> None:
    name = info.filename
    if name.startswith(("/", "\\")) or ".." in name.split("/") or "\\" in name or ":" in name:
        raise UnsafeFile(f"the archive member {name!r} points outside the archive")
    if name not in ARCHIVE_FILES and not (name.startswith("assets/") and name.count("/") <= 3):
        raise UnsafeFile(f"the archive member {name!r} is not part of a Keras model file "
                         f"({', '.join(sorted(ARCHIVE_FILES))}, assets/)")
    if info.flag_bits & 0x1:
        raise UnsafeFile(f"the archive member {name!r} is encrypted")
    if info.file_size > max_bytes:
        raise UnsafeFile(f"the archive member {name!r} is {info.file_size:,} bytes; the limit is {max_bytes:,}")
    if info.compress_size and info.file_size > 1024 * 1024 and info.file_size / info.compress_size > (
            MAX_COMPRESSION_RATIO):
        raise UnsafeFile(f"the archive member {name!r} inflates {info.file_size // info.compress_size}-fold")


def read_keras_archive(path: str, max_params: int) -> dict[str, Any]:
    """config.json of a `.keras` file, after checking every member and the weights' HDF5 structure."""
    max_bytes = _weight_budget(max_params) * 8 + MAX_CONFIG_BYTES
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeFile(f"the file is not a readable .keras archive: {exc}") from None
    with archive:
        members = archive.infolist()
        if len(members) > 1000:
            raise UnsafeFile(f"the archive has {len(members)} members; a Keras model file has a few")
        for info in members:
            _check_member(info, max_bytes)
        names = {info.filename for info in members}
        if "config.json" not in names:
            raise UnsafeFile("the archive has no config.json; save the model with model.save('model.keras')")
        if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
            raise UnsafeFile("config.json is larger than any model config")
        try:
            document = json.loads(archive.read("config.json"))
        except (ValueError, RecursionError) as exc:
            raise UnsafeFile(f"config.json is not valid JSON: {exc}") from None
        if "model.weights.h5" in names:
            with archive.open("model.weights.h5") as member, h5py.File(member, "r") as h5:
                check_h5(h5, _weight_budget(max_params), "model.weights.h5")
    return document


# --- legacy .h5 ----------------------------------------------------------------------------------

def read_h5_model(path: str, max_params: int) -> dict[str, Any]:
    """The `model_config` attribute of a legacy `.h5` model file, after checking its HDF5 structure."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise UnsafeFile(f"the file is not a readable HDF5 file: {exc}") from None
    with h5:
        check_h5(h5, _weight_budget(max_params), "the .h5 file")
        config = h5.attrs.get("model_config")
        if config is None:
            raise UnsafeFile("the .h5 file holds no model_config: it is a weights file, not a whole model. "
                             "Save the model with model.save('model.h5'), or upload weights with POST /v1/weights")
        if isinstance(config, bytes):
            config = config.decode("utf-8")
        if not isinstance(config, str) or len(config) > MAX_CONFIG_BYTES:
            raise UnsafeFile("the .h5 file's model_config is not a JSON string")
        try:
            return json.loads(config)
        except (ValueError, RecursionError) as exc:
            raise UnsafeFile(f"the .h5 file's model_config is not valid JSON: {exc}") from None


def check_model_file(path: str, file_format: str, max_params: int) -> dict[str, Any]:
    """Inspect an uploaded model file, count its parameters, then let Keras load it."""
    if file_format == "keras":
        document = read_keras_archive(path, max_params)
    elif file_format == "h5":
        document = read_h5_model(path, max_params)
    else:
        raise UnsafeFile(f"unknown model file format {file_format!r}")
    check_config(document, catalog())
    # Legacy .h5 configs have no `module` keys and go through Keras's legacy loader; both are counted here.
    check_budget(lambda: _from_config(document, file_format), max_params)
    with failures_named():
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    described = describe(model, max_params)
    described["summary"]["source"] = {"format": file_format}
    return described


def _from_config(document: dict[str, Any], file_format: str) -> Any:
    if file_format == "h5":
        return compat.model_from_legacy_config(document)
    return keras.saving.deserialize_keras_object(document, safe_mode=True)
