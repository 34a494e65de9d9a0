"""Jobs' results back as Keras returns them: `fit` a `History`, `evaluate` a scalar, a list or a dict, `predict`
an array, a list of arrays or a dict of arrays keyed as the model's outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import keras
import numpy as np

from kerasd.progress import progress_bar


class History(keras.callbacks.History):
    """What `fit` returns, a Keras `History`: `history` (metric -> values per epoch), `epoch`, `params`, `model`;
    and `job`, the job document."""

    def __init__(self, job: dict[str, Any], params: dict[str, Any], model: Any) -> None:
        super().__init__()
        self.job = job
        self.history = dict(job.get("history") or {})
        self.epoch = [row.get("epoch") for row in job.get("epochs") or []]
        self.set_params(params)
        self.set_model(model)

    def __repr__(self) -> str:
        return f"<kerasd History job={self.job.get('id')} epochs={len(self.epoch)} keys={sorted(self.history)}>"


def evaluation(job: dict[str, Any], *, return_dict: bool) -> Any:
    """A scalar (the loss alone), a list in Keras's order (loss first), or the dict with `return_dict=True`."""
    found = (job.get("result") or {}).get("evaluation") or {}
    metrics = dict(found.get("metrics") or {})
    if return_dict:
        return metrics
    # The worker lists the values as Keras's evaluate does; a server without the list gives the dict's order.
    values = found.get("list")
    if not isinstance(values, list):
        values = [metrics[name] for name in sorted(metrics, key=lambda name: name != "loss")]
    return values[0] if len(values) == 1 else values


def predictions(found: np.ndarray | dict[str, np.ndarray], structure: str) -> Any:
    """The worker stores one output as an array and several by output name (`.npz`): a model whose outputs are a
    dict gets the dict back, any other a list, as Keras's predict."""
    if not isinstance(found, dict):
        return found
    return dict(found) if structure == "dict" else list(found.values())


def duration(job: dict[str, Any]) -> float | None:
    try:
        started = datetime.fromisoformat(job["started_at"])
        finished = datetime.fromisoformat(job["finished_at"])
        return (finished - started).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def show_done(job: dict[str, Any], steps: int | None, values: dict[str, Any] | None, verbose: int) -> None:
    """The finished bar `evaluate` and `predict` print."""
    if verbose:
        progress_bar(steps, verbose=verbose).update(steps or 0, values, finalize=True, elapsed_s=duration(job))
