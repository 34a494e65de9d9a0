"""Files a job leaves for the client: the declared callbacks' files put where the callbacks said, and the
model's summary table as Keras prints it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kerasd.errors import NotFound
from kerasd.tensorboard_logs import extract_logs as _extract_logs


def deliver_callback_files(client: Any, job: dict[str, Any], callbacks: list[tuple[dict[str, Any], str | None]],
                           verbose: int, workdir: Path) -> None:
    """The files the declared callbacks wrote on the worker (TensorBoard logs, CSV log, checkpoint), put where
    each callback's local path said."""
    result = job.get("result") or {}
    stopped = result.get("early_stopping")
    for spec, path in callbacks:
        name = spec["class_name"]
        if name == "EarlyStopping" and stopped and spec["config"].get("verbose", 0) and verbose:
            print(f"Epoch {stopped.get('stopped_epoch')}: early stopping")
        if not path:
            continue
        try:
            if name == "TensorBoard":
                archive = workdir / "tensorboard.tar.gz"
                client.jobs.artifact(job["id"], "tensorboard.tar.gz", archive, verbose=0)
                _extract_logs(archive, Path(path))
            elif name == "CSVLogger":
                client.jobs.artifact(job["id"], "history.csv", path, verbose=0)
            elif name == "ModelCheckpoint":
                artifact = ("checkpoint.weights.h5" if spec["config"].get("save_weights_only")
                            else "checkpoint.keras")
                client.jobs.artifact(job["id"], artifact, path, verbose=0)
        except NotFound:
            warnings.warn(f"{name}: job {job['id']} produced no file for {path}", stacklevel=3)


def summary_lines(model: dict[str, Any], local_name: str, line_length: int | None = None) -> list[str]:
    """`model.summary()`'s table from the server's summary of the model: layers, output shapes, parameters."""
    summary = model.get("summary") or {}
    width = line_length or 78
    columns = (34, 26, width - 60)
    lines = [f'Model: "{model.get("name") or local_name}"  (kerasd model {model["id"]})',
             "━" * width,
             f"{'Layer (type)':<{columns[0]}}{'Output Shape':<{columns[1]}}{'Param #':>{columns[2]}}",
             "━" * width]
    for layer in summary.get("layers", []):
        shape = layer.get("output_shape")
        shown = "?" if shape is None else "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
        params = layer.get("params")
        lines.append(f"{layer.get('name', '')} ({layer.get('class_name', '')})"[:columns[0] - 1].ljust(columns[0])
                     + shown.ljust(columns[1]) + (f"{params:,}" if params is not None else "?").rjust(columns[2]))
    lines.append("━" * width)
    if summary.get("built", True) and summary.get("total_params") is not None:
        lines += [f" Total params: {summary['total_params']:,}",
                  f" Trainable params: {summary.get('trainable_params', 0):,}",
                  f" Non-trainable params: {summary.get('non_trainable_params', 0):,}"]
    else:
        lines.append(" " + (summary.get("note") or "the model is built when it first sees data"))
    return lines


