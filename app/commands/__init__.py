"""The server's commands: `kerasd up`, `api`, `worker`, `migrate` and `admin`.

The SDK's `kerasd` command line finds them through the `kerasd.commands` entry point (pyproject.toml), so the
client package imports nothing of the server, and a client-only install says what to install instead.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def _migrate(_args: argparse.Namespace) -> int:
    from app.core.migrate import upgrade_to_head
    from app.core.settings import get_settings

    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.resolved_database_url)
    print("kerasd: database is at the newest schema")
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    # Whether keys are required depends on the address bound (app/http/auth.py); say what is wrong before starting.
    os.environ["KERASD_API_HOST"] = args.host
    from app.core.settings import get_settings
    from app.http.auth import AuthConfigError, auth_mode

    get_settings.cache_clear()
    try:
        auth_mode(get_settings())
    except AuthConfigError as exc:
        raise SystemExit(f"kerasd api: {exc}") from None

    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, proxy_headers=True, http=_http_protocol(),
                # The API logs each request itself (app/http/observability.py): uvicorn's line would be dropped.
                access_log=False)
    return 0


def _http_protocol() -> str:
    """uvicorn's httptools protocol with a response's head and body in one write (app/http/protocol.py), where
    httptools is installed (the api extra's uvicorn[standard]); else uvicorn's own choice."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "auto"
    return "app.http.protocol:HttpToolsProtocol"


def _up(args: argparse.Namespace) -> int:
    from app.commands.embedded import run_embedded

    return run_embedded(host=args.host, port=args.port, data_dir=args.data_dir, redis_port=args.redis_port,
                        backend=args.backend)


def _worker(args: argparse.Namespace) -> int:
    from app.commands.worker import run

    return run(args)


def register(commands: Any) -> None:
    """Add the server's subcommands to the `kerasd` parser's subparsers."""
    up = commands.add_parser("up", help="run the whole service on this machine: SQLite, Redis, API, one worker")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default=None, help="where SQLite, Redis and caches live (default ~/.kerasd)")
    up.add_argument("--redis-port", type=int, default=6390, help="port of the Redis that `up` starts")
    up.add_argument("--backend", default=None, choices=("tensorflow", "jax", "torch"),
                    help="the Keras backend of the whole stack (default KERAS_BACKEND, else tensorflow); jax or "
                    "torch run without TensorFlow installed")
    up.set_defaults(run=_up)

    api = commands.add_parser("api", help="run the HTTP API (uvicorn)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="uvicorn processes (production runs 2: docker-compose.yml)")
    api.add_argument("--log-level", default="info")
    api.set_defaults(run=_api)

    worker = commands.add_parser("worker", help="run a Celery worker that trains jobs")
    worker.add_argument("--queue", default=None, help="base queue name (default KERASD_QUEUE)")
    worker.add_argument("--gpus", default="auto", help="'auto' (all visible GPUs, or none), 'all', 'none' or "
                        "ids like 0,1: one worker process per GPU (see --gpus-per-worker)")
    worker.add_argument("--gpus-per-worker", type=int, default=1, help="GPUs per worker process, for "
                        "multi-GPU jobs (MirroredStrategy)")
    worker.add_argument("--backend", default=None, choices=("tensorflow", "jax", "torch"),
                        help="the Keras backend it runs (default KERAS_BACKEND, else Keras's own default): it "
                        "takes the jobs of that backend only")
    worker.add_argument("--name", default="kerasd@%h", help="Celery node name")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="bring the database to the newest schema")
    migrate.set_defaults(run=_migrate)

    from app.commands.admin import add_admin_commands

    add_admin_commands(commands)
