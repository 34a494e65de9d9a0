"""The FastAPI app factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import asynccontextmanager

import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from app.core import logs
from app.core.read_pool import close_read_pool
from app.core.settings import get_settings
from app.datasets import routes as datasets
from app.events import routes as events
from app.experiments import routes as experiments
from app.http.auth import RequireCredentials, auth_mode, current_caller
from app.http.limits import RequestLimits
from app.http.observability import Observability
from app.http.openapi import API_VERSION, named_components, operation_id
from app.http.problems import install_problem_handlers, problem_responses
from app.http.ratelimit import RateLimiter, limiter_client
from app.jobs import routes as jobs
from app.jobs.schema_docs import OPENAPI_NAMES
from app.models import routes as models
from app.models import yaml_parser
from app.registry import routes as registry
from app.specchecker.pool import SpecChecker
from app.sweeps import routes as sweeps
from app.system import dashboard
from app.system import routes as system
from app.tenants import routes as tenants
from app.tenants.key_cache import KeyCache
from app.webhooks import routes as webhooks
from app.weights import routes as weights

log = logging.getLogger("kerasd.api")
# Every /v1 route may answer these (besides its own successes); each is a problem document.
V1_ERRORS = problem_responses(400, 401, 403, 404, 408, 409, 413, 414, 415, 422, 429, 503)

DESCRIPTION = """
kerasd runs Keras `compile` / `fit` on GPU workers for you: create a model from a spec, upload numpy
arrays, submit a fit job, follow its events, download the trained weights and the architecture.

Every error is an `application/problem+json` document whose `detail` says what was wrong and what to
do instead.
"""


@asynccontextmanager
async def lifespan(application: FastAPI):
    settings = get_settings()
    # uvicorn has set its loggers from --log-level; every line, uvicorn's too, goes out in one format.
    logs.configure(settings.log_format, level=logging.getLogger("uvicorn.error").getEffectiveLevel(),
                   loggers=("uvicorn", "uvicorn.error"))
    # Our own access lines (with request ids, without query strings) replace uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    mode = auth_mode(settings)  # refuses to start with localhost-open on a non-loopback address
    # Said once, at info: `kerasd up` runs the API at --log-level warning and prints this itself, beside its own
    # start-up line (app/commands/embedded.py), so a user sees it once.
    if mode == "localhost-open":
        log.info("API keys are not required from this machine (KERASD_AUTH=localhost-open, bound to %s): a "
                    "request without a key acts as tenant 'default'; any other bind address requires keys",
                    settings.api_host)
    else:
        log.info("API keys are required on every /v1 request (KERASD_AUTH=required)")
    checker = SpecChecker(processes=settings.spec_checker_processes, memory_mb=settings.spec_checker_memory_mb,
                          timeout_s=settings.spec_checker_timeout_s, per_tenant=settings.spec_checks_per_tenant,
                          max_waiting=settings.spec_checker_max_waiting, wait_s=settings.spec_checker_wait_s)
    application.state.spec_checker = checker
    application.state.redis_sync = redis.Redis.from_url(settings.redis_url)
    # Sized above KERASD_MAX_STREAMS_PER_PROCESS (each live stream blocks on one connection at a time); a burst past
    # it waits for a connection instead of failing a stream already answered 200.
    application.state.redis_async = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_async_connections, timeout=10))
    application.state.key_cache = KeyCache(settings.api_key_cache_s)
    application.state.rate_limiter = RateLimiter(limiter_client(settings.redis_url))
    # TensorFlow takes seconds to import: do it in the sandboxes now, not in the first user's request.
    threading.Thread(target=checker.warm, name="spec-checker-warmup", daemon=True).start()
    # What the process holds once started (modules, the app, settings) is never garbage: out of the collector's
    # reach, a full collection under load walks only what requests made.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        await close_read_pool()
        checker.close()
        yaml_parser.close()
        application.state.redis_sync.close()
        await application.state.redis_async.aclose()
        await application.state.rate_limiter.client.aclose()


def create_app() -> FastAPI:
    # /docs is served by app.system.dashboard with Swagger UI's files from a package, never from a CDN.
    # The document's version is the API's (app/http/openapi.py); kerasd's own is GET /version's.
    application = FastAPI(title="kerasd", version=API_VERSION, description=DESCRIPTION, lifespan=lifespan,
                          docs_url=None, redoc_url=None, generate_unique_id_function=operation_id)
    install_problem_handlers(application)
    # Innermost first: a key is asked for before any body is read, bodies are bounded before a route reads
    # them, and every request, refused or not, is timed, counted and logged with its request id.
    application.add_middleware(RequestLimits)
    application.add_middleware(RequireCredentials)
    application.add_middleware(Observability)
    application.include_router(system.router)
    # Every /v1 route resolves its caller's tenant first (and within its request rate).
    # experiments first: its /v1/jobs/compare must be matched before the jobs router's /v1/jobs/{job_id}.
    for router in (models.router, datasets.router, experiments.router, jobs.router, events.router, weights.router,
                   models.plugins_router, tenants.router, webhooks.router, sweeps.router, registry.router):
        application.include_router(router, dependencies=[Depends(current_caller)], responses=V1_ERRORS)
    dashboard.install(application)
    described = application.openapi

    def openapi() -> dict:
        if application.openapi_schema is None:
            application.openapi_schema = named_components(described(), OPENAPI_NAMES)
        return application.openapi_schema

    application.openapi = openapi  # type: ignore[method-assign]
    return application
