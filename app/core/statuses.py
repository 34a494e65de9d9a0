"""The one map of job statuses: each status, whether a job ever leaves it, and the event that reports its end."""

from __future__ import annotations

from typing import NamedTuple


class JobStatus(NamedTuple):
    name: str
    # The event type (app/core/events.py) that reports a job ending in this status; None: the job moves on.
    terminal_event: str | None
    meaning: str


STATUSES = (
    JobStatus("queued", None, "waiting for a worker (again, after a retry or a lost worker)"),
    JobStatus("running", None, "a worker holds it: it trains, evaluates or predicts"),
    JobStatus("succeeded", "finished", "done: its result and artifacts are there"),
    JobStatus("failed", "failed", "stopped by an error; `error` says which and what to do"),
    JobStatus("cancelled", "cancelled", "stopped on request; what it had trained is kept"),
    JobStatus("pruned", "pruned", "a sweep's trial stopped early by its pruner; what it had trained is kept"),
)

JOB_STATUSES = tuple(status.name for status in STATUSES)
TERMINAL_EVENT_OF_STATUS = {status.name: status.terminal_event for status in STATUSES if status.terminal_event}
# Statuses from which a job never moves again (but by a retry, which queues it as a new attempt).
TERMINAL_STATUSES = tuple(TERMINAL_EVENT_OF_STATUS)
TERMINAL_EVENTS = tuple(TERMINAL_EVENT_OF_STATUS.values())
# For the jobs list's `status` filter.
STATUS_PATTERN = f"^({'|'.join(JOB_STATUSES)})$"

# The statuses as users read them, in docs/api.md (tests/test_job_contract.py checks that it is there).
STATUSES_MARKDOWN = "\n".join([
    "| status | meaning | terminal (the stream's last event) |",
    "|---|---|---|",
    *(f"| `{s.name}` | {s.meaning} | {f'yes (`{s.terminal_event}`)' if s.terminal_event else 'no'} |"
      for s in STATUSES),
])
