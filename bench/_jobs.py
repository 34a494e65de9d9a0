"""Jobs through a running kerasd for the benchmarks: uploads, models, a job followed to its end, its events,
and processes' CPU time. The client is plain httpx, as any user's would be."""

from __future__ import annotations

import io
import itertools
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (a uvicorn supervisor's workers), from /proc."""
    total = cpu_seconds(pid)
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return total
    return total + sum(tree_cpu_seconds(int(child)) for child in children)


def upload_arrays(client: httpx.Client, name: str, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    response = client.post("/v1/datasets", files={"file": (name, buffer.getvalue(), "application/octet-stream")})
    response.raise_for_status()
    return response.json()["id"]


def create_model(client: httpx.Client, spec: dict[str, Any]) -> str:
    response = client.post("/v1/models", json=spec)
    response.raise_for_status()
    return response.json()["id"]


@dataclass
class JobRun:
    """One job as the client saw it: seconds from POST to its terminal event, and the events."""

    job_id: str
    seconds: float
    status: str
    events: list[dict[str, Any]] = field(default_factory=list)
    job: dict[str, Any] = field(default_factory=dict)

    def progress(self) -> dict[str, float | None]:
        """Batch events during training: how many a second (from the first batch event to the last epoch
        event), the longest gap between two progress events (batch or epoch), by the worker's clock."""
        stamps = [(e["type"], event_time(e["ts"])) for e in self.events if e["type"] in ("batch", "epoch")]
        batches = [t for kind, t in stamps if kind == "batch"]
        if len(batches) < 2:
            return {"batch_events": len(batches), "per_s": None, "longest_gap_s": None}
        end = max(t for _, t in stamps)
        times = [t for _, t in stamps]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return {"batch_events": len(batches), "per_s": len(batches) / (end - batches[0]),
                "longest_gap_s": max(gaps)}


def event_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_job(client: httpx.Client, request: dict[str, Any], *, timeout_s: float = 1800) -> JobRun:
    """Submit, then follow the job's event stream until its terminal event (one long request: the client
    learns of the end the moment the worker publishes it, after the job's outcome is committed in SQL)."""
    started = time.perf_counter()
    created = client.post("/v1/jobs", json=request)
    if created.is_error:  # the server's problem document says what was wrong
        raise SystemExit(f"POST /v1/jobs answered {created.status_code}: {created.text[:2000]}")
    job_id = created.json()["id"]
    events: list[dict[str, Any]] = []
    ended = None
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout_s) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            events.append(event)
            if event["type"] in ("finished", "failed", "cancelled"):
                ended = time.perf_counter()
                break
    seconds = (ended or time.perf_counter()) - started
    job = client.get(f"/v1/jobs/{job_id}").json()
    return JobRun(job_id=job_id, seconds=seconds, status=job["status"], events=events, job=job)


def median_range(values: list[float], digits: int = 3) -> str:
    if not values:
        return "n/a"
    return (f"{statistics.median(values):.{digits}f} (range {min(values):.{digits}f}-{max(values):.{digits}f}, "
            f"n={len(values)})")
