"""Keras callbacks a job declares by class and arguments (tutorial §4.4), each argument checked under Keras's name.

Callbacks are never sent as code. Arguments that name files are the worker's to choose: the files come back as
artifacts of the job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
