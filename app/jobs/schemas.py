"""A job as the user submits it (`JobCreate`: compile, fit, evaluate and predict arguments under Keras's own
names) and as the API answers it (`JobOut`: status, attempts, queue position, history, result and links).

Arrays are named by reference to stored datasets (app/jobs/data.py); callbacks are declared by class and config,
never sent as code (app/jobs/callbacks.py). Everything here is checked before a job is stored (pydantic shapes
here, names and data in app.jobs.service, Keras itself in the spec checker); the worker gets the job contract
built from it (app/core/contract.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.contract import (
    DEFAULT_ARTIFACTS,
    ArtifactName,
    Backend,
    Distribution,
    JobKind,
    MixedPrecision,
    TuningRequest,
)
from app.experiments.schemas import JobName, MetricSummary, Notes, Param, Tags
from app.jobs.callbacks import CallbackSpec
from app.jobs.data import ArrayInput, ArrayRef, IdField, Pipeline, ValidationData
from app.registry.schemas import VersionReference

# Arguments the tutorial documents that Keras 3 removed, and what to use instead (checklist §3.1, §6).
REMOVED_COMPILE_ARGUMENTS = {
    "sample_weight_mode": "pass per-sample weights as fit's `sample_weight` (any shape Keras accepts)",
    "target_tensors": "pass the targets as fit's `y`",
    "distribute": "multi-GPU jobs use tf.distribute.MirroredStrategy on the worker; ask for GPUs in the job",
}
REMOVED_JOB_FIELDS = {
    "estimator": "tf.keras.estimator was removed in TF 2.16: submit a fit job; workers distribute it",
    "model_to_estimator": "tf.keras.estimator was removed in TF 2.16: submit a fit job; workers distribute it",
}


KerasObject = str | dict[str, Any]


def _refuse_removed(values: Any, removed: dict[str, str], where: str) -> Any:
    if isinstance(values, dict):
        for name, replacement in removed.items():
            if name in values:
                raise ValueError(f"{where}{name!r} was removed from Keras: {replacement}")
    return values


class CompileSpec(BaseModel):
    """`model.compile(...)` (tutorial §3.1)."""

    model_config = ConfigDict(extra="forbid")

    optimizer: KerasObject = Field(
        default="rmsprop", examples=[{"class_name": "Adam", "config": {"learning_rate": 0.001}}],
        description="A name ('adam') or {class_name, config}; a learning_rate may itself be a schedule "
                    "{class_name: 'ExponentialDecay', config: {...}}.")
    loss: KerasObject | list[KerasObject] = Field(
        examples=["categorical_crossentropy"],
        description="A name or {class_name, config}; for several outputs a list, or a dict by output name.")
    # As Keras takes them: a list for every output, or per output a list (in the outputs' order) or a dict by
    # output name, each entry one metric or a list of them (`{"out_a": ["accuracy"], "out_b": ["mae"]}`).
    metrics: list[KerasObject | list[KerasObject]] | dict[str, KerasObject | list[KerasObject]] | None = Field(
        default=None, examples=[["categorical_accuracy"]])
    loss_weights: list[float] | dict[str, float] | None = None
    weighted_metrics: list[KerasObject | list[KerasObject]] | dict[str, KerasObject | list[KerasObject]] | None = None
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_execution: int = Field(default=1, ge=1, le=100_000)
    run_eagerly: bool = False

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, values: Any) -> Any:
        return _refuse_removed(values, REMOVED_COMPILE_ARGUMENTS, "compile: ")


class FitSpec(BaseModel):
    """`model.fit(...)` on stored arrays (tutorial §3.2) or a pipeline of them (§3.3)."""

    model_config = ConfigDict(extra="forbid")

    x: ArrayInput | Pipeline
    y: ArrayInput | None = None
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    epochs: int = Field(default=1, ge=1, le=100_000)
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    validation_data: ValidationData | Pipeline | None = None
    # "batch" shuffles batch-sized chunks (for HDF5-like data), as Keras does.
    shuffle: bool | Literal["batch"] = True
    class_weight: dict[int, float] | None = None
    sample_weight: ArrayRef | None = None
    initial_epoch: int = Field(default=0, ge=0)
    steps_per_epoch: int | None = Field(default=None, ge=1)
    validation_steps: int | None = Field(default=None, ge=1)
    validation_freq: int = Field(default=1, ge=1)
    # Accepted for compatibility with the tutorial's code; progress goes to the event stream instead.
    verbose: int | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _epochs_after_initial(self) -> FitSpec:
        if self.initial_epoch >= self.epochs:
            raise ValueError(f"initial_epoch ({self.initial_epoch}) must be below epochs ({self.epochs}): "
                             "Keras trains epochs initial_epoch+1 .. epochs")
        return self


class EvaluateSpec(BaseModel):
    """`model.evaluate(...)` (tutorial §3.4)."""

    model_config = ConfigDict(extra="forbid")

    x: ArrayInput | Pipeline
    y: ArrayInput | None = None
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    sample_weight: ArrayRef | None = None
    steps: int | None = Field(default=None, ge=1)
    verbose: int | Literal["auto"] = "auto"


class PredictSpec(BaseModel):
    """`model.predict(...)` (tutorial §3.4)."""

    model_config = ConfigDict(extra="forbid")

    x: ArrayInput | Pipeline
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    steps: int | None = Field(default=None, ge=1)
    verbose: int | Literal["auto"] = "auto"


class WarmStart(BaseModel):
    """Start from trained weights: an earlier job's, a registered model version's, or an uploaded `.weights.h5`."""

    model_config = ConfigDict(extra="forbid")

    job_id: IdField | None = None
    model_version: VersionReference | None = None
    weights_id: IdField | None = None

    @model_validator(mode="after")
    def _one_source(self) -> WarmStart:
        if sum(value is not None for value in (self.job_id, self.model_version, self.weights_id)) != 1:
            raise ValueError("give exactly one of job_id (an earlier job's weights), model_version (a registered "
                             "model's version: 'name/3' or 'name@alias') or weights_id (an upload)")
        return self


EXAMPLE_ID = "0123456789abcdef0123456789abcdef"
EXAMPLE_FIT_JOB = {
    "kind": "fit",
    "model_id": EXAMPLE_ID,
    "compile": {
        "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
        "loss": "categorical_crossentropy",
        "metrics": ["categorical_accuracy"],
    },
    "fit": {
        "x": {"dataset_id": EXAMPLE_ID, "array": "train_x"},
        "y": {"dataset_id": EXAMPLE_ID, "array": "train_y"},
        "epochs": 10,
        "batch_size": 100,
        "validation_data": {"x": {"dataset_id": EXAMPLE_ID, "array": "val_x"},
                            "y": {"dataset_id": EXAMPLE_ID, "array": "val_y"}},
    },
    "callbacks": [{"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 2}}],
}
EXAMPLE_EVALUATE_JOB = {
    "kind": "evaluate",
    "source_job_id": EXAMPLE_ID,
    "evaluate": {"x": {"dataset_id": EXAMPLE_ID, "array": "val_x"},
                 "y": {"dataset_id": EXAMPLE_ID, "array": "val_y"}, "batch_size": 32},
}
EXAMPLE_PREDICT_JOB = {
    "kind": "predict",
    "source_job_id": EXAMPLE_ID,
    "predict": {"x": {"dataset_id": EXAMPLE_ID, "array": "val_x"}, "batch_size": 32},
}


class Resources(BaseModel):
    """What the job needs from a worker: GPUs (0: any worker; n: a worker with n GPUs)."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(default=0, ge=0, le=16)


class JobCreate(BaseModel):
    """A fit, evaluate or predict job.

    fit: `model_id` (or `source_job_id` / `model_version`, to go on from that job's or version's trained model),
    `compile` and `fit`. evaluate / predict: the trained model of `source_job_id` or `model_version` (or
    `model_id` with its initial weights), and `evaluate` / `predict`; an evaluate job compiles as the source job
    (or the version's job) did unless it gives `compile`.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [EXAMPLE_FIT_JOB, EXAMPLE_EVALUATE_JOB, EXAMPLE_PREDICT_JOB]})

    kind: JobKind = "fit"
    # The run as an experiment; changed later with PATCH /v1/jobs/{id}.
    name: JobName = None
    tags: Tags = Field(default_factory=list)
    notes: Notes = None
    model_id: IdField | None = None
    source_job_id: IdField | None = None
    # A registered model's version (`name/3`, `name@champion`): its model and trained weights, like source_job_id.
    model_version: VersionReference | None = None
    initial_weights: WarmStart | None = None
    compile: CompileSpec | None = None
    fit: FitSpec | None = None
    evaluate: EvaluateSpec | None = None
    predict: PredictSpec | None = None
    callbacks: list[CallbackSpec] = Field(default_factory=list, max_length=20)
    # Seeds Python, NumPy and the backend and makes TF ops deterministic: the same job twice gives the
    # same weights on the same worker type.
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    resources: Resources = Field(default_factory=Resources)
    backend: Backend | None = Field(default=None, description="The Keras backend that runs the job; default: the "
                                    "server's (`backend` of GET /version). Refused at submit when no worker of it "
                                    "has been seen (the answer lists those that have).")
    # 0 (lowest) to 9 (highest): among queued jobs, workers take higher priorities first.
    priority: int = Field(default=5, ge=0, le=9)
    # Keras's mixed-precision policies: float16 (GPUs with tensor cores) or bfloat16 (TPUs, recent CPUs/GPUs).
    mixed_precision: MixedPrecision | None = None
    # Data-parallel training over the worker's GPUs (tf.distribute.MirroredStrategy); the default for a
    # job that asks for more than one GPU.
    distribution: Distribution | None = None
    # A job past this many seconds stops at the next batch, keeps its checkpoint and ends failed (timeout).
    time_limit_s: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)
    # How often a job may lose its worker before it ends failed (at most the server's KERASD_MAX_ATTEMPTS).
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    # Execution tuning (workers/tuning.py): the worker picks steps_per_execution from the measured step time,
    # prefetches pipelines and tries XLA, wherever the job left them to Keras; the same seed gives the same
    # weights either way. false: Keras's defaults and the job's arguments exactly as given.
    tuning: bool = Field(default=True, description="Let the worker tune how fit executes (steps_per_execution, "
                         "input prefetch, XLA where a trial shows it faster and bit-identical) wherever the job "
                         "leaves those to Keras; never changes results. The choices are in the job's "
                         "result.tuning.")
    artifacts: list[ArtifactName] | None = Field(
        default=None, description=f"Which artifacts to produce; default {list(DEFAULT_ARTIFACTS)}. "
                                  "model.h5 (Keras's legacy HDF5 model) and savedmodel.zip (Keras export for TF "
                                  "Serving) only when asked for.")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, values: Any) -> Any:
        return _refuse_removed(values, REMOVED_JOB_FIELDS, "")

    def tuning_request(self) -> TuningRequest:
        """What the worker's tuning needs: on or off, and which tunable compile arguments the user set
        (those are never changed, even to the value they already have)."""
        given = self.compile.model_fields_set if self.compile is not None else set()
        return TuningRequest(enabled=self.tuning, user_set=sorted(given & {"steps_per_execution", "jit_compile"}))

    @model_validator(mode="after")
    def _arguments_for_kind(self) -> JobCreate:
        if self.model_id is None and self.source_job_id is None and self.model_version is None:
            raise ValueError("name the model: model_id, or source_job_id for an earlier job's trained model, or "
                             "model_version for a registered model's version ('name/3' or 'name@alias')")
        if self.source_job_id is not None and self.model_version is not None:
            raise ValueError("give source_job_id or model_version, not both: each names the trained model to use")
        given = {name for name in ("fit", "evaluate", "predict") if getattr(self, name) is not None}
        if given != {self.kind}:
            raise ValueError(f"a {self.kind} job takes the '{self.kind}' arguments (and no others); got "
                             f"{sorted(given) or 'none'}")
        if self.kind == "fit":
            if self.compile is None:
                raise ValueError("a fit job needs 'compile' (optimizer, loss, metrics)")
        if self.callbacks and self.kind != "fit":
            raise ValueError("callbacks are for fit jobs")
        return self


# --- answers ---------------------------------------------------------------------------------------

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
    name: str | None
    tags: list[str]
    notes: str | None
    kind: str
    status: str
    model_id: str
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    # 1 = the next job a worker takes; null once it left the queue.
    queue_position: int | None
    cancel_requested_at: datetime | None
    request: dict[str, Any]
    # Keras's History.history: metric name -> one value per finished epoch.
    history: dict[str, list[float | None]]
    epochs: list[dict[str, Any]]
    result: dict[str, Any] | None
    # The scalar hyperparameters of the request, recorded at submit (names in docs/api.md).
    params: dict[str, Param]
    # Per logged metric: its final and best values and the epoch of the best, kept as epochs are recorded.
    metrics: dict[str, MetricSummary]
    sweep_id: str | None = Field(description="the sweep this job is a trial of; null for a job submitted alone")
    links: dict[str, str]
    status_message: str | None = Field(default=None, description="why a queued job is waiting when no live "
                                       "worker can run it (none runs its backend with its GPUs); else null")


class JobPage(BaseModel):
    """A page of jobs, newest first. Follow `next` (or pass `next_cursor` as `cursor`) for the one after it: each
    page costs the same however deep it is, and jobs added meanwhile never shift it."""

    items: list[JobOut]
    limit: int
    next: str | None = Field(description="the next page's path with its cursor; null on the last page")
    next_cursor: str | None = Field(description="the cursor of the next page (`?cursor=`); null on the last page")
    total: int | None = Field(description="the number of jobs these filters match: given when asked for "
                              "(`?total=exact|estimate`) or when this first page holds them all, else null")
    total_kind: Literal["exact", "estimate"] | None = Field(
        description="whether `total` was counted or is PostgreSQL's estimate (`?total=estimate`: cheap at any "
                    "size, not exact); null without a total")
