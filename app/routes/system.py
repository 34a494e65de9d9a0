"""Liveness and versions (tutorial §1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

import app as kerasd_app
from app.deps import spec_checker
from app.spec_checker import SpecChecker
from app.workers_registry import live_workers

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness: the API process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/version", summary="Versions of kerasd, TensorFlow and Keras, the backend, and the workers seen")
def version(request: Request, checker: SpecChecker = Depends(spec_checker)) -> dict:
    keras_side = checker.cached("versions")
    workers = live_workers(request.app.state.redis_sync)
    return {"kerasd": kerasd_app.__version__, "tensorflow": keras_side.get("tensorflow"),
            "keras": keras_side["keras"], "backend": keras_side["backend"], "workers": workers}
