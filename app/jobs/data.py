"""A job's data as the user names it: stored arrays by dataset and name, lists and dicts of them, or a pipeline.

The API resolves these to the stored arrays of the job contract (app/jobs/inputs.py, app/core/contract.py); the
pipeline's ops are the contract's own `PipelineOp`, checked here as the user sends them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.core.contract import PipelineOp

IdField = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ArrayRef(BaseModel):
    """An array stored on the server: a dataset, and the array's name inside it (optional for one-array .npy)."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: IdField
    array: str | None = Field(default=None, max_length=100)


# A model's inputs (or targets) as Keras takes them: one array, a list, or a dict by input/output name.
ArrayInput = ArrayRef | list[ArrayRef] | dict[str, ArrayRef]


class PipelineSpec(BaseModel):
    """`tf.data.Dataset.from_tensor_slices((x, y[, sample_weight]))` followed by `ops` in order."""

    model_config = ConfigDict(extra="forbid")

    x: ArrayInput
    y: ArrayInput | None = None
    sample_weight: ArrayRef | None = None
    ops: list[PipelineOp] = Field(default_factory=list, max_length=20)


class Pipeline(BaseModel):
    """In place of arrays: a pipeline built with tf.data on the worker from stored arrays."""

    model_config = ConfigDict(extra="forbid")

    pipeline: PipelineSpec


class ValidationData(BaseModel):
    """`validation_data=(x, y)` or `(x, y, sample_weight)`."""

    model_config = ConfigDict(extra="forbid")

    x: ArrayInput
    y: ArrayInput
    sample_weight: ArrayRef | None = None
