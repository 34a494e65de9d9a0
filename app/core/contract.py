"""The job contract: what the API stores with a job (`jobs.request`) for a worker to run, as typed models.

The API builds one `JobRequest` from a checked submission and stores `model_dump(mode="json")`; the worker reads
it back once with `JobRequest.model_validate(job.request)` and passes the typed object on. Every model forbids
keys it does not know, so a misspelt key fails at submit rather than being dropped on the way to Keras.

Versions: a stored request without `version` (written before it existed) is version 1. Version 2 added a sweep
trial's `trial` and `keras_config`, and export jobs (`kind: "export"`), which a worker must not ignore: only trials
and exports are written as version 2; the other kinds are still written as version 1, which every worker reads.
Version 3 added `backend`, the Keras backend the job runs on (its queue is that backend's): every job that names one
is written as version 3, and a request without it (any older version) runs on whatever backend its worker has. A
change to this contract that a worker must not ignore raises `CONTRACT_VERSION` and teaches `JobRequest` to read the
older versions; a worker refuses a request newer than it knows (workers are upgraded before the API).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    ValidationError,
    field_serializer,
    model_validator,
)

CONTRACT_VERSION = 3

JobKind = Literal["fit", "evaluate", "predict"]
# What a worker runs: the kinds users submit, and the registry's exports of a model version (contract version 2).
RequestKind = Literal["fit", "evaluate", "predict", "export"]
EXPORT_VERSION = 2
# The Keras backends a job may name (contract version 3); a worker runs one, `keras.backend.backend()`.
Backend = Literal["tensorflow", "jax", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)
BACKEND_VERSION = 3
ExportFormat = Literal["tf_saved_model", "onnx", "litert"]
# The zip an export job writes, by format (its only artifact; the version keeps it as `<format>.zip`).
EXPORT_FILES = {"tf_saved_model": "savedmodel.zip", "onnx": "onnx.zip", "litert": "litert.zip"}
MixedPrecision = Literal["mixed_float16", "mixed_bfloat16"]
Distribution = Literal["mirrored"]
# What a worker can export (workers/exports.py); a fit job asks for some of them, by default all but the legacy
# HDF5 model and SavedModel. Keras logs a warning that `.h5` is legacy every time it writes one, so it is made only
# for a job that asks for it (tools that still read `.h5`); `.keras` and `weights.h5` hold the same model.
ArtifactName = Literal["weights.h5", "model.keras", "model.h5", "architecture.json", "architecture.yaml",
                       "history.csv", "savedmodel.zip"]
ARTIFACTS: tuple[str, ...] = get_args(ArtifactName)
DEFAULT_ARTIFACTS = ("weights.h5", "model.keras", "architecture.json", "architecture.yaml", "history.csv")
# The key of a resolved array in the stored data: {"$array": {dataset_id, array, sha256, ...}}.
ARRAY = "$array"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)


# --- data ------------------------------------------------------------------------------------------

class ResolvedArray(_Contract):
    """One stored array, as the API resolved the user's {dataset_id, array}: the worker loads exactly this."""

    dataset_id: str
    array: str
    sha256: str
    format: Literal["npy", "npz"]
    shape: list[int]
    dtype: str


class StoredArray(_Contract):
    resolved: ResolvedArray = Field(alias=ARRAY)


# As Keras takes inputs or targets: one array, a list, or a dict by input/output name.
Arrays = StoredArray | list[StoredArray] | dict[str, StoredArray]


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

    @model_validator(mode="after")
    def _arguments(self) -> PipelineOp:
        if self.op == "batch" and self.batch_size is None:
            raise ValueError("batch needs batch_size")
        if self.op == "shuffle" and self.buffer_size is None:
            raise ValueError("shuffle needs buffer_size")
        return self


class PipelineSource(_Contract):
    """`tf.data.Dataset.from_tensor_slices((x, y[, sample_weight]))`, then `ops` in order."""

    x: Arrays
    y: Arrays | None = None
    sample_weight: StoredArray | None = None
    ops: list[PipelineOp] = Field(default_factory=list)


class PipelineData(_Contract):
    pipeline: PipelineSource


class ValidationArrays(_Contract):
    """`validation_data=(x, y)` or `(x, y, sample_weight)`."""

    x: Arrays
    y: Arrays
    sample_weight: StoredArray | None = None


class JobData(_Contract):
    """The data arguments of fit, evaluate or predict, under Keras's names."""

    # None only in an export job without a sample: the worker then generates rows (workers/model_exports.py).
    x: Arrays | PipelineData | None = None
    y: Arrays | None = None
    sample_weight: StoredArray | None = None
    validation_data: ValidationArrays | PipelineData | None = None

    def arrays(self) -> Iterator[ResolvedArray]:
        """Every stored array the job reads."""
        yield from _arrays_in([value for _name, value in self])


def _arrays_in(value: Any) -> Iterator[ResolvedArray]:
    if isinstance(value, StoredArray):
        yield value.resolved
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _arrays_in(item)
    elif isinstance(value, dict):
        yield from _arrays_in(list(value.values()))
    elif isinstance(value, PipelineData):
        source = value.pipeline
        yield from _arrays_in([source.x, source.y, source.sample_weight])
    elif isinstance(value, ValidationArrays):
        yield from _arrays_in([value.x, value.y, value.sample_weight])


# --- what to run -----------------------------------------------------------------------------------

class WeightsSource(_Contract):
    """The weights a job starts from: an earlier job's, an uploaded `.weights.h5`, or a model's own upload."""

    sha256: str
    # The suffix Keras's load_weights dispatches on: a .weights.h5 file, or a whole .keras / legacy .h5 model.
    format: Literal["weights.h5", "keras", "h5"] = "weights.h5"
    source: str = Field(alias="from")  # for people: "job <id>", "upload <id>", "the model's upload"
    # An earlier job's trained architecture: a model made without an input shape is built by its first fit,
    # and its weights load only into that built architecture.
    architecture_sha256: str | None = None


class CompileDocument(_Contract):
    """`model.compile` arguments, every Keras object already a serialized document with its module (the API
    resolved names and modules); checked again by the allowlist walk before Keras sees them."""

    optimizer: Any
    loss: Any = None
    metrics: Any = None
    loss_weights: list[float] | dict[str, float] | None = None
    weighted_metrics: Any = None
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_execution: int = 1
    run_eagerly: bool = False


class FitArguments(_Contract):
    """`model.fit` arguments besides the data. An argument absent here is absent in the call too (Keras's
    default; fit warns about `shuffle` given with a dataset, so a pipeline job leaves it out)."""

    batch_size: int | None = None
    epochs: int = 1
    validation_split: float = 0.0
    shuffle: bool | Literal["batch"] = True
    class_weight: dict[int, float] | None = None
    initial_epoch: int = 0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    validation_freq: int = 1

    def keyword_arguments(self) -> dict[str, Any]:
        """The arguments as the job gave them, for `model.fit(..., **these)`."""
        return self.model_dump(exclude_unset=True)


class InferenceArguments(_Contract):
    """`model.evaluate` or `model.predict` arguments besides the data."""

    batch_size: int | None = None
    steps: int | None = None

    def keyword_arguments(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ExportArguments(_Contract):
    """Export the model in `format` under `directory` (`<name>/<version>`, as TensorFlow Serving lays models out),
    then load what was written with the format's own runtime and compare its predictions of the job's `x` (the
    sample; rows generated from the model's inputs when the job has none) with Keras's: the largest absolute
    difference per output, within `tolerance` or not."""

    format: ExportFormat
    directory: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[0-9]{1,9}$")
    tolerance: float = Field(default=1e-5, gt=0)
    max_rows: int = Field(default=1000, ge=1, le=1000)


class DeclaredCallback(_Contract):
    """A Keras callback by class and arguments, checked at submit; the worker chooses file paths."""

    class_name: str
    config: dict[str, Any] = Field(default_factory=dict)


class TuningRequest(_Contract):
    """Execution tuning (workers/tuning.py): on or off, and the tunable compile arguments the user set (those
    are never changed, even to the value they already have)."""

    enabled: bool = True
    user_set: list[Literal["steps_per_execution", "jit_compile"]] = Field(default_factory=list)


class TrialLink(_Contract):
    """The sweep trial a job is (version 2): the worker reports each epoch's objective to the study and stops the
    job, `pruned`, when the study's pruner says so (workers/sweep_reports.py)."""

    sweep_id: str
    number: int
    study: str
    optuna_trial_id: int
    metric: str
    direction: Literal["minimize", "maximize"]
    prune: bool = False


class JobRequest(_Contract):
    """Everything a worker needs to run a job, resolved and checked by the API."""

    version: Annotated[int, Field(ge=1)] = 1
    kind: RequestKind
    weights: WeightsSource | None = None
    compile: CompileDocument | None = None
    data: JobData
    arguments: FitArguments | InferenceArguments | ExportArguments
    callbacks: list[DeclaredCallback] = Field(default_factory=list)
    seed: int | None = None
    artifacts: list[ArtifactName] = Field(default_factory=list)
    queue: str | None = None
    priority: int = 5
    mixed_precision: MixedPrecision | None = None
    distribution: Distribution | None = None
    time_limit_s: int | None = None
    # None in requests stored before tuning existed: workers/tuning.py then infers what the user set.
    tuning: TuningRequest | None = None
    # The user's request as they sent it, which GET /v1/jobs/{id} answers as `request`.
    submitted: dict[str, Any] = Field(default_factory=dict)
    # Version 2: the sweep trial this job is, and the Keras config it trains when the sweep's values changed the
    # model's (else its model's own).
    trial: TrialLink | None = None
    keras_config: dict[str, Any] | None = None
    # Version 3: the Keras backend that runs the job (None in older requests: whichever its worker runs).
    backend: Backend | None = None

    @model_validator(mode="before")
    @classmethod
    def _readable(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        version = value.get("version", 1)
        if isinstance(version, int) and version > CONTRACT_VERSION:
            # Before the fields are read: a newer request may hold keys this contract does not know.
            raise ValueError(f"this job request is version {version}, and this worker reads versions up to "
                             f"{CONTRACT_VERSION}: upgrade the worker (workers go before the API)")
        if isinstance(value.get("arguments"), dict):
            # The kind decides which arguments these are: evaluate's and predict's would also pass for a fit's
            # (every fit argument has a default).
            model = ARGUMENTS_OF.get(value.get("kind"), InferenceArguments)
            try:
                value = {**value, "arguments": model.model_validate(value["arguments"])}
            except ValidationError as exc:
                raise ValueError(f"arguments of a {value.get('kind')} job: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobRequest:
        if type(self.arguments) is not ARGUMENTS_OF.get(self.kind, InferenceArguments):
            raise ValueError(f"a {self.kind} job's arguments are {type(self.arguments).__name__}")
        if self.kind != "export" and self.data.x is None:
            raise ValueError(f"a {self.kind} job needs its x")
        if self.kind == "export" and (self.weights is None or self.version < EXPORT_VERSION):
            raise ValueError(f"an export job needs the trained weights and contract version {EXPORT_VERSION}")
        if self.kind in ("fit", "evaluate") and self.compile is None:
            raise ValueError(f"{self.kind} jobs need a compile document")
        if self.backend is not None and self.version < BACKEND_VERSION:
            raise ValueError(f"a job naming its backend is contract version {BACKEND_VERSION}")
        return self

    @field_serializer("arguments")
    def _arguments_as_given(self, arguments: FitArguments | InferenceArguments | ExportArguments,
                            info: SerializationInfo) -> dict[str, Any]:
        return arguments.model_dump(mode=info.mode, exclude_unset=True)

    @property
    def epochs(self) -> int | None:
        """The epoch a fit ends at (None for evaluate and predict)."""
        return self.arguments.epochs if isinstance(self.arguments, FitArguments) else None


ARGUMENTS_OF: dict[str, type[BaseModel]] = {"fit": FitArguments, "evaluate": InferenceArguments,
                                            "predict": InferenceArguments, "export": ExportArguments}
