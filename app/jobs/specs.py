"""What a job asks for: compile, fit, evaluate and predict arguments under Keras's own names.

Arrays are named by reference to stored datasets; callbacks are declared by class and config, never sent
as code. Everything here is checked before a job is stored (pydantic shapes here, names and data in
app.jobs.service, Keras itself in the spec checker).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.jobs.schema_docs import OP_VARIANTS

IdField = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
# In a stored job request, an array reference resolved by the API: {"$array": {dataset_id, array, sha256, ...}}.
ARRAY = "$array"

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


class ArrayRef(BaseModel):
    """An array stored on the server: a dataset, and the array's name inside it (optional for one-array .npy)."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: IdField
    array: str | None = Field(default=None, max_length=100)


# A model's inputs (or targets) as Keras takes them: one array, a list, or a dict by input/output name.
ArrayInput = ArrayRef | list[ArrayRef] | dict[str, ArrayRef]


class PipelineOp(BaseModel):
    """One `tf.data` call (tutorial §3.3): batch, shuffle, repeat or prefetch, with its arguments."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["batch", "shuffle", "repeat", "prefetch"]
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    drop_remainder: bool = False
    buffer_size: int | None = Field(default=None, ge=1, le=100_000_000)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    reshuffle_each_iteration: bool = True
    count: int | None = Field(default=None, ge=-1)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # Validation stays this one model: a job's stored request repeats every op's defaults (a batch op with
        # `reshuffle_each_iteration`), and posting it again must still be accepted.
        return {"title": "PipelineOp", "description": cls.__doc__, **handler(OP_VARIANTS.core_schema)}

    @model_validator(mode="after")
    def _arguments(self) -> PipelineOp:
        if self.op == "batch" and self.batch_size is None:
            raise ValueError("batch needs batch_size")
        if self.op == "shuffle" and self.buffer_size is None:
            raise ValueError("shuffle needs buffer_size")
        return self


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
    metrics: list[KerasObject] | dict[str, KerasObject | list[KerasObject]] | None = Field(
        default=None, examples=[["categorical_accuracy"]])
    loss_weights: list[float] | dict[str, float] | None = None
    weighted_metrics: list[KerasObject] | dict[str, KerasObject | list[KerasObject]] | None = None
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


class _CallbackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EarlyStoppingConfig(_CallbackConfig):
    monitor: str = "val_loss"
    min_delta: float = 0.0
    patience: int = Field(default=0, ge=0)
    verbose: int = 0
    mode: Literal["auto", "min", "max"] = "auto"
    baseline: float | None = None
    restore_best_weights: bool = False
    start_from_epoch: int = Field(default=0, ge=0)


class ReduceLROnPlateauConfig(_CallbackConfig):
    monitor: str = "val_loss"
    factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    patience: int = Field(default=10, ge=0)
    verbose: int = 0
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = 1e-4
    cooldown: int = Field(default=0, ge=0)
    min_lr: float = Field(default=0.0, ge=0.0)


class ModelCheckpointConfig(_CallbackConfig):
    """The checkpoint comes back as the artifact `checkpoint.weights.h5` (or `checkpoint.keras`)."""

    monitor: str = "val_loss"
    verbose: int = 0
    save_best_only: bool = False
    save_weights_only: bool = True
    mode: Literal["auto", "min", "max"] = "auto"
    save_freq: Literal["epoch"] | int = "epoch"
    initial_value_threshold: float | None = None


class TensorBoardConfig(_CallbackConfig):
    """The logs come back as the artifact `tensorboard.tar.gz`; the worker chooses log_dir."""

    histogram_freq: int = Field(default=0, ge=0)
    write_graph: bool = True
    write_images: bool = False
    write_steps_per_second: bool = False
    update_freq: Literal["batch", "epoch"] | int = "epoch"
    profile_batch: int | list[int] = 0
    embeddings_freq: int = Field(default=0, ge=0)


class CSVLoggerConfig(_CallbackConfig):
    """The log comes back as the artifact `history.csv`; the worker chooses the file."""

    separator: str = Field(default=",", min_length=1, max_length=1)
    append: bool = False


class TerminateOnNaNConfig(_CallbackConfig):
    pass


class LearningRateSchedulerConfig(_CallbackConfig):
    """`schedule`: a Keras LearningRateSchedule ({class_name, config}); the epoch number is its step."""

    schedule: dict[str, Any] = Field(examples=[{"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 0.9}}])
    verbose: int = 0


CALLBACK_CONFIGS: dict[str, type[_CallbackConfig]] = {
    "EarlyStopping": EarlyStoppingConfig,
    "ReduceLROnPlateau": ReduceLROnPlateauConfig,
    "ModelCheckpoint": ModelCheckpointConfig,
    "TensorBoard": TensorBoardConfig,
    "CSVLogger": CSVLoggerConfig,
    "TerminateOnNaN": TerminateOnNaNConfig,
    "LearningRateScheduler": LearningRateSchedulerConfig,
}
# Arguments that name files: the worker owns its file system, and the files come back as artifacts.
SERVER_PATHS = {"filepath": "ModelCheckpoint", "log_dir": "TensorBoard", "filename": "CSVLogger"}


class CallbackSpec(BaseModel):
    """A Keras callback by class and arguments (tutorial §4.4), every argument under Keras's name."""

    model_config = ConfigDict(extra="forbid")

    class_name: Literal[tuple(CALLBACK_CONFIGS)]  # type: ignore[valid-type]
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _config(self) -> CallbackSpec:
        for argument in SERVER_PATHS:
            if argument in self.config:
                raise ValueError(f"{self.class_name}: the worker chooses '{argument}'; the file comes back as "
                                 "an artifact of the job (GET /v1/jobs/{id}/artifacts)")
        checked = CALLBACK_CONFIGS[self.class_name].model_validate(self.config)
        self.config = checked.model_dump(mode="json")
        return self


class WarmStart(BaseModel):
    """Start from trained weights: an earlier job's, or an uploaded `.weights.h5`."""

    model_config = ConfigDict(extra="forbid")

    job_id: IdField | None = None
    weights_id: IdField | None = None

    @model_validator(mode="after")
    def _one_source(self) -> WarmStart:
        if (self.job_id is None) == (self.weights_id is None):
            raise ValueError("give exactly one of job_id (an earlier job's weights) or weights_id (an upload)")
        return self


ARTIFACTS = ("weights.h5", "model.keras", "model.h5", "architecture.json", "architecture.yaml", "history.csv",
             "savedmodel.zip")
DEFAULT_ARTIFACTS = ("weights.h5", "model.keras", "model.h5", "architecture.json", "architecture.yaml",
                     "history.csv")

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

    fit: `model_id` (or `source_job_id`, to go on from that job's trained model), `compile` and `fit`.
    evaluate / predict: the trained model of `source_job_id` (or `model_id` with its initial weights), and
    `evaluate` / `predict`; an evaluate job compiles as the source job did unless it gives `compile`.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [EXAMPLE_FIT_JOB, EXAMPLE_EVALUATE_JOB, EXAMPLE_PREDICT_JOB]})

    kind: Literal["fit", "evaluate", "predict"] = "fit"
    model_id: IdField | None = None
    source_job_id: IdField | None = None
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
    # 0 (lowest) to 9 (highest): among queued jobs, workers take higher priorities first.
    priority: int = Field(default=5, ge=0, le=9)
    # Keras's mixed-precision policies: float16 (GPUs with tensor cores) or bfloat16 (TPUs, recent CPUs/GPUs).
    mixed_precision: Literal["mixed_float16", "mixed_bfloat16"] | None = None
    # Data-parallel training over the worker's GPUs (tf.distribute.MirroredStrategy); the default for a
    # job that asks for more than one GPU.
    distribution: Literal["mirrored"] | None = None
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
    artifacts: list[Literal[ARTIFACTS]] | None = Field(  # type: ignore[valid-type]
        default=None, description=f"Which artifacts to produce; default {list(DEFAULT_ARTIFACTS)}. "
                                  "savedmodel.zip (Keras export for TF Serving) only when asked for.")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, values: Any) -> Any:
        return _refuse_removed(values, REMOVED_JOB_FIELDS, "")

    def tuning_request(self) -> dict[str, Any]:
        """What the worker's tuning needs: on or off, and which tunable compile arguments the user set
        (those are never changed, even to the value they already have)."""
        given = self.compile.model_fields_set if self.compile is not None else set()
        return {"enabled": self.tuning, "user_set": sorted(given & {"steps_per_execution", "jit_compile"})}

    @model_validator(mode="after")
    def _arguments_for_kind(self) -> JobCreate:
        if self.model_id is None and self.source_job_id is None:
            raise ValueError("name the model: model_id, or source_job_id for an earlier job's trained model")
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
