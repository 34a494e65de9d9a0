"""The FastAPI app factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI

import app as kerasd_app
from app.problems import install_problem_handlers
from app.routes import dashboard, datasets, events, jobs, models, plugins, system, weights
from app.settings import get_settings
from app.spec_checker import SpecChecker

DESCRIPTION = """
kerasd runs Keras `compile` / `fit` on GPU workers for you: create a model from a spec, upload numpy
arrays, submit a fit job, follow its events, download the trained weights and the architecture.

Every error is an `application/problem+json` document whose `detail` says what was wrong and what to
do instead.
"""


@asynccontextmanager
async def lifespan(application: FastAPI):
    settings = get_settings()
    logging.basicConfig(level=logging.INFO)
    checker = SpecChecker(processes=settings.spec_checker_processes, memory_mb=settings.spec_checker_memory_mb,
                          timeout_s=settings.spec_checker_timeout_s)
    application.state.spec_checker = checker
    application.state.redis_sync = redis.Redis.from_url(settings.redis_url)
    application.state.redis_async = aioredis.Redis.from_url(settings.redis_url)
    # TensorFlow takes seconds to import: do it in the sandboxes now, not in the first user's request.
    threading.Thread(target=checker.warm, name="spec-checker-warmup", daemon=True).start()
    try:
        yield
    finally:
        checker.close()
        application.state.redis_sync.close()
        await application.state.redis_async.aclose()


def create_app() -> FastAPI:
    # /docs is served by app.routes.dashboard with Swagger UI's files from a package, never from a CDN.
    application = FastAPI(title="kerasd", version=kerasd_app.__version__, description=DESCRIPTION,
                          lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(application)
    for module in (system, models, datasets, jobs, events, weights, plugins):
        application.include_router(module.router)
    dashboard.install(application)
    return application
