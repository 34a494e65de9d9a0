"""Request and response bodies of the public API, under Keras's own argument names."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.specs import SequentialSpec

ID = Field(pattern=r"^[0-9a-f]{32}$")


class ArrayRef(BaseModel):
    """An array stored on the server: a dataset, and the array's name inside it (optional for one-array .npy)."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    array: str | None = Field(default=None, max_length=100)


class ValidationData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: ArrayRef
    y: ArrayRef


class CompileSpec(BaseModel):
    """`model.compile(...)` (tutorial §3.1)."""

    model_config = ConfigDict(extra="forbid")

    optimizer: str | dict[str, Any] = Field(
        default="rmsprop", examples=[{"class_name": "Adam", "config": {"learning_rate": 0.001}}]
    )
    loss: str | dict[str, Any] = Field(examples=["categorical_crossentropy"])
    metrics: list[str | dict[str, Any]] = Field(default_factory=list, max_length=50,
                                                examples=[["categorical_accuracy"]])


class FitSpec(BaseModel):
    """`model.fit(...)` on stored arrays (tutorial §3.2)."""

    model_config = ConfigDict(extra="forbid")

    x: ArrayRef
    y: ArrayRef | None = None
    epochs: int = Field(default=1, ge=1, le=100_000)
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    validation_data: ValidationData | None = None
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    shuffle: bool = True


EXAMPLE_JOB = {
    "kind": "fit",
    "model_id": "0123456789abcdef0123456789abcdef",
    "compile": {
        "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
        "loss": "categorical_crossentropy",
        "metrics": ["categorical_accuracy"],
    },
    "fit": {
        "x": {"dataset_id": "0123456789abcdef0123456789abcdef", "array": "train_x"},
        "y": {"dataset_id": "0123456789abcdef0123456789abcdef", "array": "train_y"},
        "epochs": 10,
        "batch_size": 100,
        "validation_data": {
            "x": {"dataset_id": "0123456789abcdef0123456789abcdef", "array": "val_x"},
            "y": {"dataset_id": "0123456789abcdef0123456789abcdef", "array": "val_y"},
        },
    },
}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_JOB]})

    kind: Literal["fit"] = "fit"
    model_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    compile: CompileSpec
    fit: FitSpec
    # Seeds Python, NumPy and the backend (keras.utils.set_random_seed) for a repeatable run.
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class ModelCreate(SequentialSpec):
    """Create a model from a Sequential spec (more spec forms come with the spec-language work)."""


class ArrayOut(BaseModel):
    name: str
    shape: list[int]
    dtype: str


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    sha256: str
    size_bytes: int
    arrays: list[ArrayOut]
    created_at: datetime


class ModelOut(BaseModel):
    id: str
    name: str
    spec: dict[str, Any]
    summary: dict[str, Any]
    created_at: datetime


class JobError(BaseModel):
    type: str
    message: str


class ArtifactOut(BaseModel):
    name: str
    size_bytes: int
    media_type: str
    sha256: str
    url: str


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    model_id: str
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    request: dict[str, Any]
    # Keras's History.history: metric name -> one value per finished epoch.
    history: dict[str, list[float | None]]
    epochs: list[dict[str, Any]]
    result: dict[str, Any] | None
    links: dict[str, str]


class Page(BaseModel):
    items: list[Any]
    total: int
    limit: int
    offset: int
