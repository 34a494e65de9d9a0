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


def autogroups() -> bool:
    # The file must read as "/autogroup-N nice M": some sandboxed kernels (CI's) have it but leave it empty.
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1" and \
            Path("/proc/self/autogroup").read_text().split()[1:2] == ["nice"]
    except OSError:
        return False


@pytest.mark.skipif(not autogroups(), reason="this kernel does not schedule by autogroup")
def test_a_worker_in_its_own_session_nices_its_group():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         start_new_session=True, cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert out == ["7", "7"]


@pytest.mark.skipif(not autogroups(), reason="this kernel does not schedule by autogroup")
def test_a_worker_sharing_its_session_leaves_the_group_alone():
    # As `kerasd up`'s children: the group holds the API too, and niceness already works within it.
    ours = Path("/proc/self/autogroup").read_text().split()[-1]
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent, env={**os.environ}).stdout.split()
    assert out == ["7", ours]
