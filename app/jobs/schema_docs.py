"""How a job request reads in the OpenAPI document, where that differs from how it is validated (app.jobs.data):
a pipeline op as one variant per op, and names for the list and dict forms of array references. Client
generators then make a typed class of each."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

# In the OpenAPI document the list and dict forms of an array reference are named components (app/main.py
# gives these to app/http/openapi.py, which puts a reference in place of each inline copy): generated clients
# then have one type for each, not one per field that takes arrays.
_ARRAY_REF = {"$ref": "#/components/schemas/ArrayRef"}
OPENAPI_NAMES: dict[str, tuple[dict[str, Any], str]] = {
    "ArrayList": ({"type": "array", "items": _ARRAY_REF}, "Several arrays, in order."),
    "ArraysByName": ({"type": "object", "additionalProperties": _ARRAY_REF},
                     "Arrays by the model's input (or output) names."),
}


class BatchOp(BaseModel):
    """`.batch(batch_size, drop_remainder=False)`"""

    op: Literal["batch"]
    batch_size: int = Field(ge=1, le=1_000_000)
    drop_remainder: bool = False


class ShuffleOp(BaseModel):
    """`.shuffle(buffer_size, seed=None, reshuffle_each_iteration=True)`"""

    op: Literal["shuffle"]
    buffer_size: int = Field(ge=1, le=100_000_000)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    reshuffle_each_iteration: bool = True


class RepeatOp(BaseModel):
    """`.repeat(count=None)`: null or -1 repeats forever."""

    op: Literal["repeat"]
    count: int | None = Field(default=None, ge=-1)


class PrefetchOp(BaseModel):
    """`.prefetch(buffer_size)`: null lets tf.data choose (AUTOTUNE)."""

    op: Literal["prefetch"]
    buffer_size: int | None = Field(default=None, ge=1, le=100_000_000)


# The document's PipelineOp (app.jobs.data.PipelineOp, validated as the contract's one model): one variant per op.
OP_VARIANTS: TypeAdapter[Any] = TypeAdapter(
    Annotated[BatchOp | ShuffleOp | RepeatOp | PrefetchOp, Field(discriminator="op")])
