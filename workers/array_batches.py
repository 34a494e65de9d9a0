"""A fit's arrays as the batches Keras's own array adapter makes, in tf.data datasets with the autotuner off."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

from app.specchecker import compat
from workers.mapped_tensors import mapped_tensors

# Validation batches are the same for every fit that validates on the same arrays with the same batch size: nothing
# shuffles them, nothing random is in them. The worker keeps the last few, so a sweep's trials on a worker build them
# once (building them took as long as the training dataset, 100 ms of a trial's start on a busy 2-core machine). Kept
# only for whole arrays of the dataset cache, whose files are named by their content; a kept dataset holds its
# file's mapping (an evicted file's disk space comes back when the dataset leaves).
VALIDATION_KEPT = 2
_VALIDATION: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _kept_key(arrays: tuple[Any, ...], batch_size: Any) -> tuple[Any, ...] | None:
    """The validation dataset's key: each array's file, shape and dtype, and the batch size; None unless every array
    is absent or a whole memory-mapped file of the cache."""
    parts = []
    for array in arrays:
        if array is None:
            parts.append(None)
            continue
        if not isinstance(array, np.memmap) or array.filename is None or not array.flags.c_contiguous:
            return None
        try:
            whole = os.path.getsize(array.filename) == array.offset + array.nbytes
        except OSError:
            return None
        if not whole:
            return None
        parts.append((str(array.filename), array.shape, str(array.dtype)))
    return (*parts, batch_size)


def arrays_as_datasets(
    data: dict[str, Any], arguments: dict[str, Any], notes: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, fit arguments) with the arrays made into datasets: what Keras's fit does with arrays, done here.

    The same ArrayDataAdapter (shuffle, batches, class and sample weights), Keras's own validation split; only
    tf.data's autotuning is off. Autotuning runs a model thread in every iterator, and fit makes a new iterator
    each epoch: tearing down the last one waits for that thread, which held the training thread for up to 5 s
    at epoch starts on a busy 2-core machine (measured: bench/throughput.py, README). The fit arguments then
    leave batching, shuffling, class weights and the split to the datasets. TensorFlow backend only. `notes` gets
    a line when the validation batches are ones kept from an earlier fit (VALIDATION_KEPT).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    batch_size = arguments.get("batch_size")

    def dataset(x: Any, y: Any, sample_weight: Any, *, shuffle: Any, class_weight: Any = None) -> Any:
        # Tensors over the cache's mapped pages: the adapter would copy whole arrays into the worker's memory.
        x, y, sample_weight = mapped_tensors((x, y, sample_weight))
        adapter = compat.array_data_adapter(x, y, sample_weight=sample_weight, class_weight=class_weight,
                                            shuffle=shuffle, batch_size=batch_size)
        built = adapter.get_tf_dataset().apply(tf.data.experimental.assert_cardinality(adapter.num_batches))
        return built.with_options(options)

    data = dict(data)
    x, y, sample_weight = data["x"], data.get("y"), data.get("sample_weight")
    validation = data.get("validation_data")
    split = arguments.get("validation_split") or 0.0
    if split and validation is None:
        (x, y, sample_weight), (val_x, val_y, val_weight) = compat.train_validation_split(
            (x, y, sample_weight), validation_split=split)
        validation = {"x": val_x, "y": val_y, "sample_weight": val_weight}
    class_weight = arguments.get("class_weight")
    class_weight = {int(k): v for k, v in class_weight.items()} if class_weight else None
    data["x"] = dataset(x, y, sample_weight, shuffle=arguments.get("shuffle", True), class_weight=class_weight)
    data["y"] = data["sample_weight"] = None
    if isinstance(validation, dict):
        arrays = (validation["x"], validation["y"], validation.get("sample_weight"))
        key = _kept_key(arrays, batch_size)
        built = _VALIDATION.get(key) if key is not None else None
        if built is None:
            built = dataset(*arrays, shuffle=False)
            if key is not None:
                _VALIDATION[key] = built
                while len(_VALIDATION) > VALIDATION_KEPT:
                    _VALIDATION.popitem(last=False)
        else:
            _VALIDATION.move_to_end(key)
            if notes is not None:
                notes.append("validation arrays: the batches built for an earlier fit on this worker, kept")
        data["validation_data"] = built
    fit_arguments = {**arguments, "batch_size": None, "shuffle": False, "class_weight": None,
                     "validation_split": 0.0}
    return data, fit_arguments
