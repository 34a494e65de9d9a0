"""What a fit's data is made of, read without iterating it: datasets or arrays, their rows, batches a pass."""

from __future__ import annotations

import math
from typing import Any


def is_dataset(value: Any) -> bool:
    return hasattr(value, "element_spec") and hasattr(value, "prefetch")


def leaves_of(structure: Any) -> list[Any]:
    if structure is None:
        return []
    if isinstance(structure, dict):
        return [leaf for item in structure.values() for leaf in leaves_of(item)]
    if isinstance(structure, list | tuple):
        return [leaf for item in structure for leaf in leaves_of(item)]
    return [structure]


def row_count(structure: Any) -> int | None:
    leaves = leaves_of(structure)
    return int(leaves[0].shape[0]) if leaves and hasattr(leaves[0], "shape") else None


def batch_count(value: Any, batch_size: int | None, split: float = 0.0) -> int | None:
    """How many batches one pass over `value` holds, when that is known."""
    if value is None:
        return None
    if is_dataset(value):
        import tensorflow as tf

        count = int(tf.data.experimental.cardinality(value))
        return count if count > 0 else None
    rows = row_count(value)
    if rows is None:
        return None
    if split:
        rows = math.floor(rows * (1.0 - split))  # as keras's train_validation_split cuts
    return max(1, math.ceil(rows / (batch_size or 32)))


def validation_x(value: Any) -> Any:
    if isinstance(value, tuple):
        return value[0]
    if isinstance(value, dict) and "x" in value:
        return value["x"]
    return value
