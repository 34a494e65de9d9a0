"""Arrays from the dataset cache as TensorFlow tensors over the cache file's own pages: nothing copied.

Keras's array adapter puts whole arrays into its tf.data pipeline (`Dataset.from_tensors`), and turning a
numpy array into a tensor copies it into the worker's memory; with glibc's malloc TensorFlow's conversion
also leaves a second copy's worth held by the allocator (measured: a 256 MiB memory-mapped array grew
RssAnon by 512 MiB, 256 MiB of it still held after the tensor was freed; the worker's fit on a 292 MiB
dataset grew it by 601 MiB; with jemalloc 256 MiB and 343 MiB). A tensor made through DLPack from the
memory-mapped array is the mapping itself: the data stays in the page cache, shared by every job and worker
process on the machine, and the worker's own memory does not grow with the dataset. The values are the same
bytes, so training is bit for bit what it was. The cache maps files copy-on-write (array_cache.py): numpy
exports only writable arrays through DLPack, and a write would land in a private page, never in the file.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger("kerasd.worker")


def mapped_tensor(value: Any) -> Any:
    """A tensor over a memory-mapped array's pages; anything else (or what DLPack cannot take) as it is."""
    if not isinstance(value, np.memmap) or not value.flags.writeable or not value.flags.c_contiguous:
        return value
    import tensorflow as tf

    try:
        return tf.experimental.dlpack.from_dlpack(value.__dlpack__())
    except Exception as exc:  # a dtype DLPack or TensorFlow does not take: Keras converts it, as before
        log.info("array of dtype %s stays a numpy array for Keras to convert: %s", value.dtype, exc)
        return value


def mapped_tensors(structure: Any) -> Any:
    import tensorflow as tf

    return tf.nest.map_structure(mapped_tensor, structure)
