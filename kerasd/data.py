"""`kerasd.data.Dataset`: the tutorial's `tf.data` calls (§3.3), run by the worker as a tf.data pipeline.

    dataset = kerasd.data.Dataset.from_tensor_slices((train_x, train_y))
    dataset = dataset.batch(32).repeat()
    model.fit(dataset, epochs=5, steps_per_epoch=30)

A Dataset here holds the numpy arrays and the list of calls; nothing runs locally. When a job uses it, the
arrays are uploaded (once: the server keeps them by content hash) and the calls are sent as the job's
`pipeline` spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kerasd.arrays import as_array

AUTOTUNE = -1

Structure = Any  # an array, a list of arrays or a dict of named arrays


def _structure(value: Any, what: str) -> Structure:
    if isinstance(value, Mapping):
        return {str(name): as_array(item, f"{what}[{name!r}]") for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_array(item, f"{what}[{index}]") for index, item in enumerate(value)]
    return as_array(value, what)


def _rows(structure: Structure) -> set[int]:
    if isinstance(structure, dict):
        return {len(a) for a in structure.values()}
    if isinstance(structure, list):
        return {len(a) for a in structure}
    return {len(structure)} if structure.ndim else set()


class Dataset:
    """A pipeline over arrays: `from_tensor_slices`, then `batch`, `shuffle`, `repeat`, `prefetch`."""

    def __init__(self, x: Structure, y: Structure | None = None, sample_weight: np.ndarray | None = None,
                 ops: Sequence[dict[str, Any]] = ()) -> None:
        self.x = x
        self.y = y
        self.sample_weight = sample_weight
        self.ops: tuple[dict[str, Any], ...] = tuple(ops)

    @classmethod
    def from_tensor_slices(cls, tensors: Any) -> Dataset:
        """`(x, y)`, `(x, y, sample_weight)`, or only `x` (an array, or a dict of named input arrays)."""
        if isinstance(tensors, tuple):
            if not 1 <= len(tensors) <= 3:
                raise ValueError("from_tensor_slices takes (x,), (x, y) or (x, y, sample_weight); "
                                 f"got a tuple of {len(tensors)}")
            x = _structure(tensors[0], "x")
            y = _structure(tensors[1], "y") if len(tensors) > 1 and tensors[1] is not None else None
            weights = as_array(tensors[2], "sample_weight") if len(tensors) > 2 and tensors[2] is not None else None
        else:
            x, y, weights = _structure(tensors, "x"), None, None
        rows = _rows(x) | (_rows(y) if y is not None else set()) | ({len(weights)} if weights is not None else set())
        if len(rows) > 1:
            raise ValueError(f"all arrays must have the same first dimension (the samples); got {sorted(rows)}")
        if not rows:
            raise ValueError("from_tensor_slices needs arrays with at least one dimension")
        return cls(x, y, weights)

    def _then(self, op: dict[str, Any]) -> Dataset:
        return Dataset(self.x, self.y, self.sample_weight, (*self.ops, op))

    def batch(self, batch_size: int, drop_remainder: bool = False, **_ignored: Any) -> Dataset:
        if int(batch_size) < 1:
            raise ValueError("batch_size must be a positive integer")
        return self._then({"op": "batch", "batch_size": int(batch_size), "drop_remainder": bool(drop_remainder)})

    def shuffle(self, buffer_size: int, seed: int | None = None, reshuffle_each_iteration: bool = True) -> Dataset:
        op = {"op": "shuffle", "buffer_size": int(buffer_size),
              "reshuffle_each_iteration": bool(reshuffle_each_iteration)}
        if seed is not None:
            op["seed"] = int(seed)
        return self._then(op)

    def repeat(self, count: int | None = None) -> Dataset:
        """Repeat `count` times; None or -1 repeats for ever (give `steps_per_epoch` to fit)."""
        return self._then({"op": "repeat", "count": None if count in (None, -1) else int(count)})

    def prefetch(self, buffer_size: int | None = AUTOTUNE) -> Dataset:
        op: dict[str, Any] = {"op": "prefetch"}
        if buffer_size not in (None, AUTOTUNE):
            op["buffer_size"] = int(buffer_size)
        return self._then(op)

    def __len__(self) -> int:
        count = self.cardinality()
        if count < 0:
            raise TypeError("the dataset length is infinite" if count == -1 else "the dataset length is unknown")
        return count

    def cardinality(self) -> int:
        """Elements (batches after `batch`) as tf.data counts them; -1 for an infinite dataset."""
        count = next(iter(_rows(self.x)))
        for op in self.ops:
            if op["op"] == "batch":
                size = op["batch_size"]
                count = count // size if op["drop_remainder"] else -(-count // size)
            elif op["op"] == "repeat":
                if op["count"] is None:
                    return -1
                count *= op["count"]
        return count

    def to_spec(self, upload: Callable[[np.ndarray, str], dict[str, Any]]) -> dict[str, Any]:
        """The job's `{"pipeline": {...}}`; `upload(array, role)` returns an array reference."""

        def refs(structure: Structure, role: str) -> Any:
            if isinstance(structure, dict):
                return {name: upload(array, f"{role}.{name}") for name, array in structure.items()}
            if isinstance(structure, list):
                return [upload(array, f"{role}{index}") for index, array in enumerate(structure)]
            return upload(structure, role)

        pipeline: dict[str, Any] = {"x": refs(self.x, "x"), "ops": [dict(op) for op in self.ops]}
        if self.y is not None:
            pipeline["y"] = refs(self.y, "y")
        if self.sample_weight is not None:
            pipeline["sample_weight"] = upload(self.sample_weight, "sample_weight")
        return {"pipeline": pipeline}

    def __repr__(self) -> str:
        calls = "".join(f".{op['op']}(...)" for op in self.ops)
        return f"<kerasd.data.Dataset from_tensor_slices(...){calls}>"
