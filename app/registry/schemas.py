"""The registry as the API takes and answers it: registered models, versions with lineage, aliases, and the
references (`name/3`, `name@champion`) that jobs take wherever they take a trained model."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.contract import ExportFormat
from app.experiments.schemas import MetricSummary, Param
from app.jobs.data import ArrayRef

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
NAME = re.compile(f"^{NAME_PATTERN}$")
ALIAS = re.compile(f"^{ALIAS_PATTERN}$")
# `name/3` (a version by number) or `name@champion` (by alias; `name@latest` is the newest version).
REFERENCE = re.compile(f"^(?P<name>{NAME_PATTERN})(?:/(?P<version>[0-9]{{1,9}})|@(?P<alias>{ALIAS_PATTERN}))$")
LATEST = "latest"

ModelName = Annotated[str, Field(pattern=f"^{NAME_PATTERN}$", examples=["churn-classifier"],
                                 description="letters, digits, '_', '.' and '-' (no '/' or '@': they separate a "
                                             "version or alias in a reference), at most 100 characters")]
VersionReference = Annotated[str, Field(
    pattern=REFERENCE.pattern, max_length=200, examples=["churn-classifier/3", "churn-classifier@champion"],
    description="a registered model's version: `name/3` by number, `name@alias` by alias (`name@latest`: the "
                "newest version), resolved when the job is submitted")]
Description = Annotated[str, Field(max_length=500, pattern=r"^[^\x00]*$")]


class RegisteredModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ModelName
    description: Description = ""


class RegisteredModelOut(BaseModel):
    name: str
    description: str
    latest_version: int | None = Field(description="the newest version's number; null before the first")
    aliases: dict[str, int] = Field(description="each alias and the version it points at")
    created_at: datetime
    links: dict[str, str]


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="a succeeded fit job of yours (a sweep's best "
                        "trial is one): its weights, .keras model and architecture become the version's own")
    description: Description = ""


class DatasetArray(BaseModel):
    argument: str = Field(description="where the job read it: x, y, validation_data.x, ...")
    array: str
    shape: list[int]
    dtype: str


class DatasetLineage(BaseModel):
    sha256: str = Field(description="the dataset file's sha256: the same bytes wherever they are uploaded again")
    dataset_id: str
    format: str
    arrays: list[DatasetArray]


class Lineage(BaseModel):
    """Where a version came from, copied from its job at registration: what stays true if the job is deleted."""

    job: dict[str, Any] = Field(description="id, name, tags, status, attempts (how many times a worker ran it), "
                                            "max_attempts, sweep_id, created_at, started_at, finished_at")
    model: dict[str, Any] = Field(description="the model spec: id and name")
    datasets: list[DatasetLineage] = Field(description="every dataset the job read, by sha256, with the shape and "
                                                       "dtype of each array and where it went")
    seed: int | None
    params: dict[str, Param] = Field(description="the job's scalar hyperparameters (as GET /v1/jobs/{id})")
    metrics: dict[str, MetricSummary] = Field(description="final and best value of each metric the job logged")
    epochs_run: int | None
    compile: dict[str, Any] | None = Field(description="the compile document (an evaluate job on this version "
                                                       "compiles with it unless it gives its own)")
    started_from: str | None = Field(description="the weights the job started from, if any (a job, an upload, "
                                                 "another version)")
    trained_with: dict[str, Any] | None = Field(
        description="kerasd, keras, backend, backend_version, tensorflow, numpy and python versions, the device "
                    "(`cpu`, or `gpu: <name>`) and the worker (host:pid) that trained it; null for a job trained "
                    "before workers recorded them")


class VersionArtifactOut(BaseModel):
    name: str
    size_bytes: int
    media_type: str
    sha256: str
    url: str


class VersionOut(BaseModel):
    name: str
    version: int
    reference: str = Field(description="`name/version`: what jobs take as `model_version`")
    description: str
    aliases: list[str]
    job_id: str
    model_id: str
    created_at: datetime
    lineage: Lineage
    artifacts: list[VersionArtifactOut]
    links: dict[str, str]


class RegisteredModelDetail(RegisteredModelOut):
    versions: list[VersionOut] = Field(description="every version, oldest first")


class AliasSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="the version the alias points at from now on")


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    previous_version: int | None = Field(description="the version it pointed at before this move; null if new")
    updated_at: datetime


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: ExportFormat = Field(
        description="`tf_saved_model`: a SavedModel laid out for TensorFlow Serving (`<name>/<version>/"
                    "saved_model.pb`); `onnx`: `<name>/<version>/model.onnx` (Triton's layout), verified with "
                    "onnxruntime; `litert`: `<name>/<version>/model.tflite`, verified with the LiteRT interpreter. "
                    "Each zipped")
    # Typed ArrayRef with a None default (not `ArrayRef | None`): the document keeps `sample` an ArrayRef, as clients
    # generated from it read it, and leaving it out is the new case; an explicit null is refused.
    sample: ArrayRef = Field(  # type: ignore[assignment]
        default=None, description="rows of yours the export is verified on (the first 1,000): predicted by Keras and "
                                  "by the exported file in the format's own runtime. Left out: 100 rows generated "
                                  "from the model's input shapes and dtypes (seed 0; integers below the smallest "
                                  "Embedding's input_dim)")


class ExportOut(BaseModel):
    job_id: str = Field(description="the export job (GET /v1/jobs/{id} follows it; its events too)")
    reference: str
    format: str
    status: str = Field(description="the job's status; `deleted` once the job is deleted")
    verification: dict[str, Any] | None = Field(
        description="once the job succeeded: `status` (`verified` when every output's largest absolute difference "
                    "from Keras's predictions is within `tolerance`, else `mismatch`), `max_abs_diff` per output, "
                    "`tolerance`, `rows`, `directory`, `runtime` (the runtime and its version), `sample` "
                    "(`generated` true when the rows were made from the model's inputs), and for LiteRT `batch` "
                    "(`any`, or 1 for a file that takes one row at a time, with a `note` saying why)")
    error: dict[str, Any] | None
    file: VersionArtifactOut | None = Field(description="the exported file once written, with its sha256")
    created_at: datetime
    links: dict[str, str]
