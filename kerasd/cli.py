"""`kerasd` command line: up (everything on one machine), api, worker, migrate; and the client commands
(models, datasets, jobs, artifacts: kerasd/cli_client.py)."""

from __future__ import annotations

import argparse
import os


def _migrate(_args: argparse.Namespace) -> int:
    from app.migrate import upgrade_to_head
    from app.settings import get_settings

    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.resolved_database_url)
    print("kerasd: database is at the newest schema")
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, proxy_headers=True)
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.queue:
        os.environ["KERASD_QUEUE"] = args.queue
    from workers.celery_app import celery

    # solo pool: the worker process itself runs jobs, one at a time, with TensorFlow imported once.
    celery.worker_main(["worker", "--pool=solo", "--concurrency=1", f"--loglevel={args.log_level}",
                        "--without-gossip", "--without-mingle", f"--hostname={args.name}"])
    return 0


def _up(args: argparse.Namespace) -> int:
    from kerasd.embedded import run_embedded

    return run_embedded(host=args.host, port=args.port, data_dir=args.data_dir, redis_port=args.redis_port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kerasd", description="Training as a service for Keras.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole service on this machine: SQLite, Redis, API, one worker")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default=None, help="where SQLite, Redis and caches live (default ~/.kerasd)")
    up.add_argument("--redis-port", type=int, default=6390, help="port of the Redis that `up` starts")
    up.set_defaults(run=_up)

    api = commands.add_parser("api", help="run the HTTP API (uvicorn)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.add_argument("--log-level", default="info")
    api.set_defaults(run=_api)

    worker = commands.add_parser("worker", help="run a Celery worker that trains jobs")
    worker.add_argument("--queue", default=None, help="queue to consume (default KERASD_QUEUE)")
    worker.add_argument("--name", default="kerasd@%h", help="Celery node name")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="bring the database to the newest schema")
    migrate.set_defaults(run=_migrate)

    from kerasd.cli_client import add_client_commands, run_client_command

    add_client_commands(commands)

    args = parser.parse_args(argv)
    if args.command in ("models", "datasets", "jobs", "artifacts"):
        return run_client_command(args)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
