"""Running a bridge job to its end as `model.fit` runs: the queue's wait said, the job's live events drawn as
Keras's progress, a lost connection said and resumed, Ctrl-C cancelling the job."""

from __future__ import annotations

import sys
from typing import Any

from kerasd.errors import JobCancelled, JobFailed, KerasdError
from kerasd.progress import FitDisplay, QueueNotice, live


def say(message: str) -> None:
    """A line on stderr, on a line of its own even while a bar is drawn on a live display."""
    print(("\n" if live(sys.stdout) else "") + message, file=sys.stderr, flush=True)


def follow(client: Any, job_id: str, display: FitDisplay | None, verbose: int) -> dict[str, Any]:
    """Waits for the job's end while showing its progress; returns the ended job. Ctrl-C cancels the job and
    raises a short KeyboardInterrupt (the job's id, not a trace through the HTTP client)."""
    try:
        notice = QueueNotice(job_id, verbose=verbose)
        notice.close(client.jobs.wait_started(job_id, on_queued=notice.update))
        for event in client.jobs.events(job_id, on_reconnect=say):
            if display is not None:
                display.handle(event)
        return client.jobs.wait(job_id)
    except KeyboardInterrupt:
        pass
    # Outside the handler: the interrupt's own trace through httpx is not chained to the short one.
    raise cancel_on_interrupt(client, job_id)


def cancel_on_interrupt(client: Any, job_id: str) -> KeyboardInterrupt:
    """Ctrl-C stops training in Keras; here it also stops the job on the server."""
    try:
        client.jobs.cancel(job_id)
    except KerasdError as exc:
        say(f"kerasd: interrupted, but job {job_id} could not be cancelled ({exc}); it may still run: "
            f"`kerasd jobs cancel {job_id}` stops it.")
    else:
        say(f"kerasd: job {job_id} was cancelled (Ctrl-C). The worker stops it within a batch; its last "
            "checkpoint is kept.")
    return KeyboardInterrupt(f"job {job_id} cancelled")


def checked(job: dict[str, Any]) -> dict[str, Any]:
    """The job when it succeeded; JobFailed or JobCancelled (with Keras's error type and message) otherwise."""
    if job["status"] == "failed":
        raise JobFailed(job)
    if job["status"] == "cancelled":
        raise JobCancelled(job)
    return job
