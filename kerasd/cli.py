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

    # Whether keys are required depends on the address bound (app/auth.py); say what is wrong before starting.
    os.environ["KERASD_API_HOST"] = args.host
    from app.auth import AuthConfigError, auth_mode
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        auth_mode(get_settings())
    except AuthConfigError as exc:
        raise SystemExit(f"kerasd api: {exc}") from None

    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, proxy_headers=True, http=_http_protocol(),
                # The API logs each request itself (app/metrics.py); uvicorn's line would be built and dropped.
                access_log=False)
    return 0


def _http_protocol() -> str:
    """uvicorn's httptools protocol with a response's head and body in one write (app/http_protocol.py), where
    httptools is installed (the api extra's uvicorn[standard]); else uvicorn's own choice."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "auto"
    return "app.http_protocol:HttpToolsProtocol"


def _worker(args: argparse.Namespace) -> int:
    from kerasd import gpus

    if args.queue:
        os.environ["KERASD_QUEUE"] = args.queue
    chosen = gpus.choose(args.gpus)
    worker_groups = gpus.groups(chosen, args.gpus_per_worker) if chosen else [[]]
    if len(worker_groups) > 1:
        return _supervise_workers(args, worker_groups)
    return _run_worker(args, worker_groups[0])


def _run_worker(args: argparse.Namespace, gpu_ids: list[str]) -> int:
    """One Celery worker process owning `gpu_ids` (none: CPU only)."""
    from app.settings import get_settings
    from kerasd.allocator import reexec_with_jemalloc

    # Before the settings are first read (they are read once and kept): the worker announces its GPUs from them.
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids) if gpu_ids else "-1"
    os.environ["KERASD_WORKER_GPUS"] = str(len(gpu_ids))
    reexec_with_jemalloc(get_settings().worker_malloc)  # before TensorFlow: the allocator is chosen at exec
    if get_settings().worker_nice > 0:
        # After the re-exec, or it would apply twice. On a host the API shares, training yields the CPU to it.
        _renice_process(get_settings().worker_nice)
    # Take GPU memory as the job needs it, so a second process or a small job does not find it all gone.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from app.queue import queues_served
    from workers.celery_app import celery

    queues = queues_served(get_settings().queue, len(gpu_ids))
    name = args.name if not gpu_ids else args.name.replace("@", f"-gpu{'+'.join(gpu_ids)}@", 1)
    # solo pool: the worker process itself runs jobs, one at a time, with TensorFlow imported once.
    celery.worker_main(["worker", "--pool=solo", "--concurrency=1", f"--loglevel={args.log_level}",
                        "--without-gossip", "--without-mingle", f"--hostname={name}", f"--queues={','.join(queues)}"])
    return 0


def _renice_process(nice: int) -> None:
    """Every thread of this process at `nice`: Linux keeps a niceness per thread, and a thread started before
    os.nice (the interpreter's own) would keep its own; threads started later (TensorFlow's) inherit it."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        os.nice(nice)
        return
    for tid in os.listdir(tasks):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except (ProcessLookupError, PermissionError):
            pass
    _renice_autogroup(nice)


def _renice_autogroup(nice: int) -> None:
    """Where Linux schedules by autogroup (sched_autogroup_enabled, the default of many kernels), a thread's
    niceness ranks it only within its session's group, and each group gets a fair share of the CPUs: a worker
    started in a session of its own (setsid, as supervisors and bench/api_load.py start it) took as much CPU as
    the API however niced (the profile of the API showed it runnable and waiting for a CPU). Such a worker has
    its group to itself, so that group is niced too. A worker sharing its session (`kerasd up`'s children)
    leaves the group alone: its niceness already works within it, and the group holds the API too."""
    try:
        if os.getsid(0) != os.getpid():
            return
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(nice))
    except OSError:
        pass  # no autogroup support, or not allowed: the threads' niceness above is what there is


def _supervise_workers(args: argparse.Namespace, worker_groups: list[list[str]]) -> int:
    """One child worker per GPU group; stopping this process stops them all."""
    import signal
    import subprocess
    import sys
    import time

    children = [subprocess.Popen([sys.executable, "-m", "kerasd", "worker", "--gpus", ",".join(group),
                                  "--gpus-per-worker", str(len(group)), "--name", args.name,
                                  "--log-level", args.log_level]) for group in worker_groups]

    def stop(*_args: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while any(child.poll() is None for child in children):
        time.sleep(0.5)
    return max(child.returncode or 0 for child in children)


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
    api.add_argument("--workers", type=int, default=1, help="uvicorn processes (production runs 2: docker-compose.yml)")
    api.add_argument("--log-level", default="info")
    api.set_defaults(run=_api)

    worker = commands.add_parser("worker", help="run a Celery worker that trains jobs")
    worker.add_argument("--queue", default=None, help="base queue name (default KERASD_QUEUE)")
    worker.add_argument("--gpus", default="auto", help="'auto' (all visible GPUs, or none), 'all', 'none' or "
                        "ids like 0,1: one worker process per GPU (see --gpus-per-worker)")
    worker.add_argument("--gpus-per-worker", type=int, default=1, help="GPUs per worker process, for "
                        "multi-GPU jobs (MirroredStrategy)")
    worker.add_argument("--name", default="kerasd@%h", help="Celery node name")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="bring the database to the newest schema")
    migrate.set_defaults(run=_migrate)

    from kerasd.cli_admin import add_admin_commands
    from kerasd.cli_client import add_client_commands, run_client_command

    add_client_commands(commands)
    add_admin_commands(commands)

    args = parser.parse_args(argv)
    if args.command in ("models", "datasets", "jobs", "artifacts"):
        return run_client_command(args)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
