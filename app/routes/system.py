"""Liveness, readiness and versions (tutorial §1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from redis import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import app as kerasd_app
from app.db import get_session
from app.deps import spec_checker
from app.sessions import SessionReleasingRoute
from app.spec_checker import SpecChecker
from app.workers_registry import live_workers

router = APIRouter(tags=["system"], route_class=SessionReleasingRoute)


@router.get("/health", summary="Liveness: the API process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/version", summary="Versions of kerasd, TensorFlow and Keras, the backend, and the workers seen")
def version(request: Request, checker: SpecChecker = Depends(spec_checker)) -> dict:
    keras_side = checker.cached("versions")
    workers = live_workers(request.app.state.redis_sync)
    return {"kerasd": kerasd_app.__version__, "tensorflow": keras_side.get("tensorflow"),
            "keras": keras_side["keras"], "backend": keras_side["backend"], "workers": workers}


@router.get("/ready", summary="Readiness: SQL and Redis answer, and at least one worker is alive",
            responses={503: {"description": "a dependency is down or no worker is alive"}})
def ready(request: Request, session: Session = Depends(get_session)) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
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
