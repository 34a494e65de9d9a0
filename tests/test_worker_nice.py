"""KERASD_WORKER_NICE: every thread of the worker niced, and, where Linux schedules by autogroup, the worker's
group too when the worker leads its own session (app/commands/worker.py `_renice_process`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("import os; from app.commands.worker import _renice_process; _renice_process(7); "
         "print(os.getpriority(os.PRIO_PROCESS, 0)); print(open('/proc/self/autogroup').read().split()[-1])")


NO_AUTOGROUP = ("this kernel does not schedule by autogroup (/proc/sys/kernel/sched_autogroup_enabled is not 1, "
                "or /proc/self/autogroup does not read '/autogroup-N nice M'): there is no group to renice; the "
                "threads' own niceness is tested everywhere")


def autogroups() -> bool:
    # The file must read as "/autogroup-N nice M": some sandboxed kernels (CI's) have it but leave it empty.
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1" and \
            Path("/proc/self/autogroup").read_text().split()[1:2] == ["nice"]
    except OSError:
        return False


@pytest.mark.skipif(not autogroups(), reason=NO_AUTOGROUP)
def test_a_worker_in_its_own_session_nices_its_group():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         start_new_session=True, cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert out == ["7", "7"]


@pytest.mark.skipif(not autogroups(), reason=NO_AUTOGROUP)
def test_a_worker_sharing_its_session_leaves_the_group_alone():
    # As `kerasd up`'s children: the group holds the API too, and niceness already works within it.
    ours = Path("/proc/self/autogroup").read_text().split()[-1]
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent, env={**os.environ}).stdout.split()
    assert out == ["7", ours]


def test_every_thread_of_the_worker_is_niced_with_or_without_autogroups():
    # A thread started before the renice (as the interpreter's own are) is niced too; in a session of its own,
    # as a supervisor starts a worker, where a kernel without autogroups refuses the group's renice quietly.
    probe = ("import os, threading\n"
             "from app.commands.worker import _renice_process\n"
             "started = threading.Event(); done = threading.Event()\n"
             "threading.Thread(target=lambda: (started.set(), done.wait()), daemon=True).start(); started.wait()\n"
             "_renice_process(7)\n"
             "tasks = os.listdir('/proc/self/task')\n"
             "print(len(tasks), sorted({os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in tasks}))\n"
             "done.set()\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         start_new_session=True, cwd=Path(__file__).resolve().parent.parent).stdout.split(maxsplit=1)
    assert int(out[0]) >= 2 and out[1].strip() == "[7]", out
