"""A run's metrics: which way each logged metric improves, and its final and best values, kept as epochs come.

Pure Python, shared by the worker (which keeps job_metrics as it records epochs, app/core/repositories/jobs.py)
and the API (which says each metric's goal in its answers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Goal = Literal["min", "max"]

# Keras 3's callbacks in mode="auto" ask each compiled metric its direction: "up" for the accuracies (acc,
# accuracy, top_k_...), AUC, Precision, Recall, the *AtRecall/*AtPrecision/*AtSensitivity/*AtSpecificity family,
# F1/FBeta, the IoUs, R2Score, CosineSimilarity and the correlations; everything else (losses, errors, hinge,
# crossentropies, counts of false positives...) goes down. A run's history has only the names, so the same
# decision is taken from the words of the name: a name with one of these words improves upwards, unless it is a
# loss ("accuracy_loss" goes down). Keras has no direction for the true positive/negative counts; more is better.
UP_WORDS = frozenset({"acc", "accuracy", "auc", "precision", "recall", "sensitivity", "specificity", "iou",
                      "f1", "fbeta", "r2", "similarity", "correlation"})
UP_SUFFIXES = ("true_positives", "true_negatives")
# Names and values a metric row can hold (job_metrics.name is VARCHAR(200)); longer names are not summarized.
MAX_NAME_CHARS = 200


def goal(name: str) -> Goal:
    """"max" for a metric that improves upwards (accuracy-like), "min" otherwise (losses, errors)."""
    words = name.removeprefix("val_").lower().split("_")
    if words[-1] == "loss":
        return "min"
    if any(word in UP_WORDS for word in words) or name.endswith(UP_SUFFIXES):
        return "max"
    return "min"


def number(value: Any) -> float | None:
    """A finite number, or None (null in the logs: a NaN or infinity; anything that is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Summary:
    """One metric of one run: the value at the last epoch that logged it, the best value and its epoch."""

    final: float | None
    best: float | None
    best_epoch: int | None
    last_epoch: int | None


def _better(value: float, than: float | None, direction: Goal) -> bool:
    return than is None or (value < than if direction == "min" else value > than)


def advance(current: Summary | None, name: str, epoch: int, value: Any) -> Summary:
    """The summary after one more epoch (later than any before it) logged `value`; a null value is the final one
    (a diverged run ends at null) and never the best."""
    value = number(value)
    best, best_epoch = (current.best, current.best_epoch) if current is not None else (None, None)
    if value is not None and _better(value, best, goal(name)):
        best, best_epoch = value, epoch
    return Summary(final=value, best=best, best_epoch=best_epoch, last_epoch=epoch)


def summarize(epochs: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[str, Summary]:
    """Every metric's summary from a run's epochs (any order)."""
    summaries: dict[str, Summary] = {}
    for epoch, logs in sorted(epochs, key=lambda item: item[0]):
        for name, value in logs.items():
            if len(name) <= MAX_NAME_CHARS:
                summaries[name] = advance(summaries.get(name), name, epoch, value)
    return summaries


def after_epoch(current: Mapping[str, Summary], epoch: int, logs: Mapping[str, Any]) -> dict[str, Summary] | None:
    """The summaries that change when `epoch` is recorded with `logs`, or None when the epoch is not later than
    one already summarized (a resumed attempt records again an epoch its lost predecessor had recorded): then
    the run's summaries are to be made again from all its epochs (`summarize`)."""
    changed: dict[str, Summary] = {}
    for name, value in logs.items():
        if len(name) > MAX_NAME_CHARS:
            continue
        known = current.get(name)
        if known is not None and known.last_epoch is not None and epoch <= known.last_epoch:
            return None
        changed[name] = advance(known, name, epoch, value)
    return changed


def evaluation(metrics: Mapping[str, Any]) -> dict[str, Summary]:
    """An evaluate job's metrics: one value each, with no epoch."""
    return {name: Summary(final=number(value), best=number(value), best_epoch=None, last_epoch=None)
            for name, value in metrics.items() if len(name) <= MAX_NAME_CHARS}
