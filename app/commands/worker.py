"""`kerasd worker`: one Celery worker process per GPU group (or one on the CPU), its allocator and its niceness."""

from __future__ import annotations

import argparse
import os


def run(args: argparse.Namespace) -> int:
    from app.commands import gpus

    if args.queue:
        os.environ["KERASD_QUEUE"] = args.queue
    if args.backend:
        # Read when Keras is first imported; the children of a multi-GPU worker inherit it.
        os.environ["KERAS_BACKEND"] = args.backend
    chosen = gpus.choose(args.gpus)
    worker_groups = gpus.groups(chosen, args.gpus_per_worker) if chosen else [[]]
    if len(worker_groups) > 1:
        return _supervise_workers(args, worker_groups)
    return _run_worker(args, worker_groups[0])


def _run_worker(args: argparse.Namespace, gpu_ids: list[str]) -> int:
    """One Celery worker process owning `gpu_ids` (none: CPU only)."""
    from app.commands.allocator import reexec_with_jemalloc
    from app.core.settings import get_settings

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
    import keras

    from app.core.queue import queues_served
    from workers.celery_app import celery

    # The jobs of this worker's Keras backend (KERAS_BACKEND, or --backend): each backend has its own queues.
    queues = queues_served(get_settings().queue, len(gpu_ids), keras.backend.backend())
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
