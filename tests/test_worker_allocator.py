"""The worker's allocator (app/commands/allocator.py): the system's by default (jemalloc's MAP_NORESERVE mappings let
a model larger than the host OOM-kill the worker); with KERASD_WORKER_MALLOC=jemalloc, jemalloc preloaded and
configured to keep big buffers in its ordinary arenas (its defaults returned them to the kernel at every free:
a page fault storm each step)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.commands.allocator import JEMALLOC_CONF, jemalloc_path
from tests.services import Process, kerasd_command

# The default worker needs no jemalloc; the tests of a jemalloc worker do (scripts/test installs libjemalloc2
# where it can, and pytest's -ra summary prints this reason where it could not).
needs_jemalloc = pytest.mark.skipif(jemalloc_path() is None,
                                    reason="this machine has no libjemalloc (apt-get install libjemalloc2)")


def environ_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode(errors="replace").split("=", 1) for pair in pairs if b"=" in pair)


def test_the_default_worker_keeps_the_system_allocator(worker: Process):
    assert "libjemalloc" not in Path(f"/proc/{worker.popen.pid}/maps").read_text()


@needs_jemalloc
def test_a_jemalloc_worker_runs_on_jemalloc_with_its_configuration(server_env: dict[str, str], run_id: str,
                                                                   logs_dir: Path):
    env = {**server_env, "KERASD_WORKER_MALLOC": "jemalloc", "KERASD_QUEUE": f"kerasd-malloc-{run_id}"}
    env.pop("MALLOC_CONF", None)
    worker = Process(kerasd_command("worker", "--name", f"malloc-{run_id}@%h"), env, logs_dir / "malloc-worker.log")
    try:
        worker.wait_for_log(" ready.", timeout_s=180)
        pid = worker.popen.pid  # the worker re-executes itself in place: same pid
        assert "libjemalloc" in Path(f"/proc/{pid}/maps").read_text()
        assert environ_of(pid).get("MALLOC_CONF") == JEMALLOC_CONF
        assert "<jemalloc>" not in worker.log_text()  # jemalloc complains on stderr about options it rejects
    finally:
        worker.stop()


@needs_jemalloc
@pytest.mark.parametrize(("conf", "accepted"), [(JEMALLOC_CONF, True), ("oversize_threshold:nonsense", False)])
def test_this_jemalloc_accepts_the_configuration(conf: str, accepted: bool):
    # abort_conf makes jemalloc abort on an option it does not know or cannot parse: the bad one proves it checks.
    env = {**os.environ, "LD_PRELOAD": jemalloc_path(), "MALLOC_CONF": f"abort_conf:true,{conf}"}
    done = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True)
    assert (done.returncode == 0) is accepted, done.stderr
