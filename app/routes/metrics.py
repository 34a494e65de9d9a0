"""GET /metrics: Prometheus's text format (app/metrics.py says what is counted and how)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.auth import metrics_reader
from app.metrics import durations

router = APIRouter(tags=["system"])


@router.get("/metrics", summary="Prometheus metrics: jobs by status, queue depth, job and epoch durations, API "
                                "latency by route, upload bytes",
            description="Counts cover every tenant, so in `required` auth mode this needs an admin key; the "
                        "embedded default serves it to this machine without one.",
            response_class=Response, dependencies=[Depends(metrics_reader)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4"}})
def metrics() -> Response:
    durations.scan()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
