"""Telling a running job's worker to stop: one Redis pub/sub channel per job, plus the SQL flag.

Pub/sub reaches the worker within milliseconds, so a cancel lands within one batch without the training
loop asking anything over the network; the flag in SQL (jobs.cancel_requested_at) is the durable record
the worker also reads when it renews its lease, in case the message was missed.
"""

from __future__ import annotations

CANCEL = "cancel"


def control_channel(job_id: str) -> str:
    return f"kerasd:job:{job_id}:control"
