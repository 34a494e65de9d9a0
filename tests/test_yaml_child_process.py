"""The process that reads YAML bodies (app/models/yaml_parser.py) and its multiprocessing resource tracker end when
their API process does, however it ends: killed (SIGKILL, as the OOM killer does) or stopped with SIGTERM while a
document it was sent is still unread. Before, both stayed behind for good, the child blocked reading a pipe whose
write end it held itself."""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from tests.holds import wait_until
from tests.services import running_api

YAML = {"Content-Type": "application/yaml"}


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields from the state on (state, ppid, ..., starttime at 19); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(parent: int) -> dict[int, tuple[str, str]]:
    """{pid: (start time, command line)} of `parent`'s children."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) and fields[1] == str(parent):
            found[int(name)] = (fields[19], _command(int(name)))
    return found


def _alive(pid: int, started: str) -> bool:
    """Still running: not gone, not a zombie waiting to be reaped, not another process that took its pid."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == started


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_the_yaml_child_and_its_tracker_end_when_the_api_process_is_killed_or_terminated(
    server_env, logs_dir, stop
) -> None:
    # A short wait for the YAML child, so that a body it cannot read is answered (503) and the API can stop.
    env = {**server_env, "KERASD_SPEC_CHECKER_TIMEOUT_S": "2", "KERASD_SPEC_CHECKER_PROCESSES": "1"}
    with running_api(env, logs_dir / f"yaml-child-{stop.name}.log") as (url, api):
        first = httpx.post(f"{url}/v1/models", content=b"a: b\n", headers=YAML, timeout=120)
        assert first.status_code == 422, first.text  # read by the child, which is started for it
        ours = {pid: found for pid, found in _children(api.popen.pid).items() if "multiprocessing" in found[1]}
        child = [pid for pid, (_, command) in ours.items() if "spawn_main" in command]
        assert len(child) == 1 and len(ours) == 2, ours  # the child and the resource tracker
        # Held still, the child cannot read the next document: the API stops with a parse unfinished.
        os.kill(child[0], signal.SIGSTOP)
        try:
            unread = httpx.post(f"{url}/v1/models", content=b"a: c\n", headers=YAML, timeout=120)
            assert unread.status_code == 503, unread.text
            api.popen.send_signal(stop)
            api.popen.wait(timeout=120)
        finally:
            # A child left behind must end by itself, not merely be stopped (one the API ended is gone already).
            with suppress(ProcessLookupError):
                os.kill(child[0], signal.SIGCONT)
        try:
            wait_until(lambda: not any(_alive(pid, started) for pid, (started, _) in ours.items()), timeout_s=60,
                       what=f"the YAML child and its tracker {sorted(ours)} ended after the API's {stop.name}")
        finally:
            for pid, (started, _) in ours.items():
                if _alive(pid, started):
                    os.kill(pid, signal.SIGKILL)
