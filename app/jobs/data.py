"""A job's data as the user names it: stored arrays by dataset and name, lists and dicts of them, or a pipeline.

The API resolves these to the stored arrays of the job contract (app/jobs/inputs.py, app/core/contract.py); the
pipeline's ops are the contract's own `PipelineOp`, checked here as the user sends them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.core import contract
from app.jobs.schema_docs import OP_VARIANTS

IdField = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ArrayRef(BaseModel):
    """An array stored on the server: a dataset, and the array's name inside it (optional for one-array .npy)."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: IdField
    array: str | None = Field(default=None, max_length=100)


class PipelineOp(contract.PipelineOp):
    __doc__ = contract.PipelineOp.__doc__

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # In the OpenAPI document one variant per op, so generated clients get a typed class of each. Validation
        # stays the contract's one model: a job's stored request repeats every op's defaults (a batch op with
        # `reshuffle_each_iteration`), and posting it again must still be accepted.
        return {"title": "PipelineOp", "description": cls.__doc__, **handler(OP_VARIANTS.core_schema)}


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
