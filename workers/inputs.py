"""A job's data as Keras takes it: arrays (memory-mapped from the cache) or a tf.data pipeline of them."""

from __future__ import annotations

from typing import Any

from app.core.contract import JobData, PipelineData, PipelineSource, StoredArray, ValidationArrays
from workers.array_cache import ArrayCache
from workers.mapped_tensors import mapped_tensors


def materialize_data(data: JobData, cache: ArrayCache) -> dict[str, Any]:
    """The data arguments the job gives (`x`, `y`, `sample_weight`, `validation_data`), loaded."""
    return {name: materialize(value, cache) for name, value in data if value is not None}


def materialize(structure: Any, cache: ArrayCache) -> Any:
    """The user's structure (one array, a list, a dict by input name) with every reference loaded;
    validation data as the dict {x, y, sample_weight}, a pipeline as a tf.data dataset."""
    if structure is None:
        return None
    if isinstance(structure, StoredArray):
        return cache.array(structure.resolved.model_dump())
    if isinstance(structure, PipelineData):
        return build_pipeline(structure.pipeline, cache)
    if isinstance(structure, ValidationArrays):
        return {name: materialize(value, cache) for name, value in structure}
    if isinstance(structure, list):
        return [materialize(item, cache) for item in structure]
    if isinstance(structure, dict):
        return {name: materialize(item, cache) for name, item in structure.items()}
    raise TypeError(f"unexpected data structure {type(structure).__name__}")


def build_pipeline(source: PipelineSource, cache: ArrayCache) -> Any:
    """`tf.data.Dataset.from_tensor_slices((x, y[, sample_weight]))` then the declared calls, in order."""
    try:
        import tensorflow as tf  # only pipelines need tf.data; array jobs run on any Keras backend
    except ImportError:
        raise ValueError("pipeline jobs are built with tf.data, which this worker does not have (it runs Keras "
                         "on another backend without TensorFlow); send arrays instead, or run a worker with "
                         "TensorFlow installed") from None

    x = materialize(source.x, cache)
    y = materialize(source.y, cache)
    weights = materialize(source.sample_weight, cache)
    # Tensors over the cache's mapped pages: from numpy arrays, TensorFlow's conversion held two copies of the
    # data under glibc's malloc; from these, one (workers/mapped_tensors.py).
    parts = mapped_tensors(tuple(part for part in (x, y, weights) if part is not None))
    dataset = tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else parts[0])
    for op in source.ops:
        if op.op == "batch":
            dataset = dataset.batch(op.batch_size, drop_remainder=op.drop_remainder)
        elif op.op == "shuffle":
            dataset = dataset.shuffle(op.buffer_size, seed=op.seed,
                                      reshuffle_each_iteration=op.reshuffle_each_iteration)
        elif op.op == "repeat":
            dataset = dataset.repeat(op.count)
        elif op.op == "prefetch":
            dataset = dataset.prefetch(op.buffer_size or tf.data.AUTOTUNE)
    return dataset
