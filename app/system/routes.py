"""Liveness, readiness, versions (tutorial §1) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import app as kerasd_app
from app.core.database import get_session
from app.core.settings import Settings
from app.core.sql import ask
from app.core.workers_registry import backends_seen, live_workers
from app.http.auth import metrics_reader, sees_internals
from app.http.deps import settings, spec_checker
from app.http.sessions import SessionReleasingRoute
from app.specchecker.pool import SpecChecker
from app.system import repository
from app.system.metrics import durations
from app.system.schemas import Health, Readiness, Versions

router = APIRouter(tags=["system"], route_class=SessionReleasingRoute)
# What a worker's entry says about the machine and process it runs as.
SERVER_IDENTITY = frozenset({"name", "pid", "hostname", "host"})


@router.get("/health", response_model=Health, summary="Liveness: the API process answers")
def get_health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/version", response_model=Versions,
            summary="Versions of kerasd, TensorFlow and Keras, the backends, and the workers seen",
            # FastAPI lists the optional key schemes; `{}` adds "or none": anyone gets the versions, an admin key the
            # workers' names and pids too.
            openapi_extra={"security": [{}]})
def get_version(request: Request, checker: SpecChecker = Depends(spec_checker),
                internals: bool = Depends(sees_internals), config: Settings = Depends(settings)) -> dict:
    keras_side = checker.cached("versions")
    workers = live_workers(request.app.state.redis_sync)
    seen = sorted(backends_seen(request.app.state.redis_sync, config.queue))
    if not internals:
        # Host names and pids say where to aim: admins (and this machine, in localhost-open mode) only.
        workers = [{k: v for k, v in w.items() if k not in SERVER_IDENTITY} for w in workers]
    return {"kerasd": kerasd_app.__version__, "tensorflow": keras_side.get("tensorflow"),
            "keras": keras_side["keras"], "backend": keras_side["backend"], "default_backend": config.job_backend,
            "backends": seen, "workers": workers}


@router.get("/ready", summary="Readiness: SQL and Redis answer, and at least one worker is alive",
            response_model=Readiness,
            responses={503: {"description": "a dependency is down or no worker is alive", "model": Readiness}})
def get_readiness(request: Request, session: Session = Depends(get_session)) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        ask(session, repository.ping())
        checks["sql"] = "ok"
    except SQLAlchemyError as exc:
        checks["sql"] = f"unavailable: {exc.__class__.__name__}"
    try:
        workers = live_workers(request.app.state.redis_sync)
        checks["redis"] = "ok"
        checks["workers"] = f"{len(workers)} alive" if workers else "none alive: start one with `kerasd worker`"
    except RedisError as exc:
        checks["redis"] = f"unavailable: {exc.__class__.__name__}"
        workers = []
    is_ready = checks["sql"] == "ok" and checks["redis"] == "ok" and bool(workers)
    return JSONResponse({"status": "ready" if is_ready else "not ready", "checks": checks},
                        status_code=200 if is_ready else 503)


@router.get("/metrics", summary="Prometheus metrics: jobs by status, queue depth, job and epoch durations, API "
                                "latency by route, upload bytes",
            description="Counts cover every tenant, so in `required` auth mode this needs an admin key; the "
                        "embedded default serves it to this machine without one.",
            response_class=Response, dependencies=[Depends(metrics_reader)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4"}})
def get_metrics() -> Response:
    durations.scan()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
