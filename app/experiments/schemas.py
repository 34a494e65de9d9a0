"""A run as an experiment: its name, tags and notes as a user sets them, and the comparison of runs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_TAGS = 50
MAX_TAG_CHARS = 64
MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 10_000
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _tag(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a tag cannot be empty")
    if CONTROL.search(value):
        raise ValueError(f"tag {value[:40]!r} has a control character")
    return value


def _name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if CONTROL.search(value):
        raise ValueError("a job's name cannot hold control characters (newlines, tabs)")
    return value or None


def tag_list(tags: list[str] | None) -> list[str]:
    """Tags as stored: each once, sorted."""
    return sorted(set(tags or ()))


Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS, examples=["baseline"]), AfterValidator(_tag)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS, description=f"At most {MAX_TAGS} tags of at most "
                                  f"{MAX_TAG_CHARS} characters; each kept once.")]
JobName = Annotated[str | None, Field(max_length=MAX_NAME_CHARS, examples=["adam-lr1e-3"],
                                      description="A name for the run; need not be unique."),
                    AfterValidator(_name)]
Notes = Annotated[str | None, Field(max_length=MAX_NOTES_CHARS, description="Free text about the run.")]


class JobUpdate(BaseModel):
    """`PATCH /v1/jobs/{id}`: what is given changes, what is absent stays; `name` or `notes` null clears them.
    `tags` replaces the tags; `add_tags` and `remove_tags` change them in place (both in one request: removed,
    then added)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "adam-lr1e-3", "add_tags": ["best"]}, {"tags": ["baseline", "mnist"], "notes": None}]})

    name: JobName = None
    notes: Notes = None
    tags: Tags | None = None
    add_tags: Tags | None = None
    remove_tags: Tags | None = None

    @model_validator(mode="after")
    def _one_way_to_tag(self) -> JobUpdate:
        if self.tags is not None and (self.add_tags is not None or self.remove_tags is not None):
            raise ValueError("give tags (the whole new list) or add_tags/remove_tags (changes), not both")
        if not self.model_fields_set:
            raise ValueError("nothing to change: give name, notes, tags, add_tags or remove_tags")
        return self


class MetricSummary(BaseModel):
    final: float | None = Field(description="the value at the last epoch that logged it (null if that was NaN)")
    best: float | None = Field(description="the lowest value for a loss or error, the highest for an accuracy-like "
                                           "metric (see goal)")
    best_epoch: int | None = Field(description="the epoch of the best value, 0-based as `epochs[].epoch`; null for "
                                               "an evaluate job's metrics")
    goal: Literal["min", "max"] = Field(description="which way the metric improves, decided from its name as Keras's "
                                                    "callbacks do with mode='auto'")


Param = str | int | float | bool


class ComparedRun(BaseModel):
    id: str
    name: str | None
    tags: list[str]
    status: str
    kind: str
    model_id: str
    created_at: datetime
    params: dict[str, Param]
    metrics: dict[str, MetricSummary]
    history: dict[str, list[float | None]] = Field(
        description="metric name -> its value at each epoch, indexed by epoch number (0-based) up to the run's "
                    "last recorded epoch; null where that epoch has no value")


class Comparison(BaseModel):
    """Runs side by side, in the order their ids were given."""

    runs: list[ComparedRun]
    metric_names: list[str] = Field(description="every metric any run logged, sorted")
    param_names: list[str] = Field(description="every param any run has, sorted")
    differing_params: list[str] = Field(description="the params whose values are not the same in every run (a "
                                                    "param some runs lack counts as differing)")


def comparison_example() -> dict[str, Any]:
    run = {"id": "0123456789abcdef0123456789abcdef", "name": "adam-lr1e-3", "tags": ["baseline"],
           "status": "succeeded", "kind": "fit", "model_id": "fedcba9876543210fedcba9876543210",
           "created_at": "2026-12-01T10:00:00Z", "params": {"optimizer": "Adam", "optimizer.learning_rate": 0.001},
           "metrics": {"val_loss": {"final": 0.41, "best": 0.39, "best_epoch": 1, "goal": "min"}},
           "history": {"val_loss": [0.52, 0.39, 0.41]}}
    return {"runs": [run], "metric_names": ["val_loss"], "param_names": ["optimizer", "optimizer.learning_rate"],
            "differing_params": []}
