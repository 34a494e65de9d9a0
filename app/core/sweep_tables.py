"""The sweeps' tables (DESIGN.md §15): a hyperparameter search and its trials, each trial a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.tables import Base, new_id, utcnow


class Sweep(Base):
    """A hyperparameter search (DESIGN.md §15): a base job, a space of paths into it, an objective, an algorithm, a
    budget and an early-stopping rule. Its Optuna study lives in Optuna's own tables (app/core/studies.py); its
    trials are jobs (`jobs.sweep_id`), one `sweep_trials` row each."""

    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_tenant_created", "tenant_id", "created_at", "id"),
                      Index("ix_sweeps_running", "status", postgresql_where=text("status = 'running'"),
                            sqlite_where=text("status = 'running'")))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # running | completed | cancelled
    # The sweep as the user sent it (POST /v1/sweeps), answered back as `request`.
    request: Mapped[dict[str, Any]]
    # What a trial is made of, resolved at submit (app/sweeps/service.py): the base job's contract and params,
    # and where each dimension's value goes in it (app/core/sweep_trials.py).
    plan: Mapped[dict[str, Any]]
    study_name: Mapped[str] = mapped_column(String(100))
    trials_created: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class SweepTrial(Base):
    """One trial of a sweep: its job, Optuna's trial, the values it was given and the objective it reached
    (set when its end has been told to the study)."""

    __tablename__ = "sweep_trials"

    sweep_id: Mapped[str] = mapped_column(String(32), ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    optuna_trial_id: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]]
    objective: Mapped[float | None] = mapped_column(Float)
    # When the trial's end was told to the study (null: not yet); `note` says why a trial has no objective.
    told_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(String(500))


class SweepFailedAsk(Base):
    """A trial of a client sweep that was asked for and never got a job: its client reported it failed (its model
    could not be built, or its job was refused), or it waited past its time and was counted failed. Its study was
    told it failed; the sweep shows it with its reason."""

    __tablename__ = "sweep_failed_asks"

    sweep_id: Mapped[str] = mapped_column(String(32), ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    params: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(String(500))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
