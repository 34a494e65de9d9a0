"""Keras callbacks declared in a job (tutorial §4.4), with the worker's own paths and what they report.

Files the callbacks write (checkpoints, TensorBoard logs, CSV logs) live in the job's work directory and
come back as artifacts; what they decided (the epoch EarlyStopping stopped at, a NaN loss) goes into the
job's result or error.
"""

from __future__ import annotations

import math
import tarfile
from pathlib import Path
from typing import Any

import keras

from app.core.contract import DeclaredCallback
from app.specchecker.building import catalog
from app.specchecker.keras_names import keras_object
from app.specchecker.safety import check_config


class NaNWatch(keras.callbacks.Callback):
    """Keras's TerminateOnNaN, remembering where the loss stopped being a number."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.where: dict[str, Any] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = {"epoch": self.epoch + 1, "batch": batch + 1, "loss": str(float(loss))}
            self.model.stop_training = True


class DeclaredCallbacks:
    def __init__(self, declared: list[DeclaredCallback], workdir: Path) -> None:
        self.workdir = workdir
        self.callbacks: list[keras.callbacks.Callback] = []
        self.early_stopping: keras.callbacks.EarlyStopping | None = None
        self.nan_watch: NaNWatch | None = None
        self._files: list[tuple[str, Path, str]] = []
        for callback in declared:
            self.callbacks.append(self._build(callback.class_name, dict(callback.config)))

    def _build(self, name: str, config: dict[str, Any]) -> keras.callbacks.Callback:
        if name == "EarlyStopping":
            self.early_stopping = keras.callbacks.EarlyStopping(**config)
            return self.early_stopping
        if name == "ReduceLROnPlateau":
            return keras.callbacks.ReduceLROnPlateau(**config)
        if name == "ModelCheckpoint":
            suffix = ".weights.h5" if config.get("save_weights_only", True) else ".keras"
            path = self.workdir / f"checkpoint{suffix}"
            self._files.append((f"checkpoint{suffix}", path, "application/octet-stream"))
            return keras.callbacks.ModelCheckpoint(filepath=str(path), **config)
        if name == "TensorBoard":
            log_dir = self.workdir / "tensorboard"
            self._files.append(("tensorboard.tar.gz", log_dir, "application/gzip"))
            return keras.callbacks.TensorBoard(log_dir=str(log_dir), **config)
        if name == "CSVLogger":
            path = self.workdir / "csvlogger.csv"
            self._files.append(("history.csv", path, "text/csv"))
            return keras.callbacks.CSVLogger(str(path), **config)
        if name == "TerminateOnNaN":
            self.nan_watch = NaNWatch()
            return self.nan_watch
        if name == "LearningRateScheduler":
            document = keras_object(config["schedule"], "keras.optimizers.schedules")
            check_config(document, catalog())
            schedule = keras.optimizers.schedules.deserialize(document)
            return keras.callbacks.LearningRateScheduler(lambda epoch, _lr: float(schedule(epoch)),
                                                         verbose=config.get("verbose", 0))
        raise ValueError(f"callback {name!r} is not supported")

    def outcome(self) -> dict[str, Any]:
        """What the callbacks decided, for the job's result."""
        found: dict[str, Any] = {}
        stopper = self.early_stopping
        if stopper is not None and stopper.stopped_epoch > 0:
            found["early_stopping"] = {
                "stopped_epoch": stopper.stopped_epoch + 1,  # Keras counts from 0; its log says epoch + 1
                "best_epoch": stopper.best_epoch + 1,
                "best": float(stopper.best),
                "monitor": stopper.monitor,
                "restored_best_weights": bool(stopper.restore_best_weights and stopper.best_weights is not None),
            }
        return found

    def nan_error(self) -> dict[str, str] | None:
        if self.nan_watch is None or self.nan_watch.where is None:
            return None
        where = self.nan_watch.where
        return {"type": "TerminateOnNaN",
                "message": f"TerminateOnNaN stopped training: the loss became {where['loss']} at epoch "
                           f"{where['epoch']}, batch {where['batch']}. Lower the learning rate or check the data."}

    def artifacts(self) -> list[tuple[str, Path, str]]:
        """The callbacks' files that exist, TensorBoard's log directory packed as one archive."""
        found = []
        for name, path, media_type in self._files:
            if path.is_dir():
                archive = self.workdir / name
                with tarfile.open(archive, "w:gz") as tar:
                    tar.add(path, arcname=path.name)
                found.append((name, archive, media_type))
            elif path.exists():
                found.append((name, path, media_type))
        return found
