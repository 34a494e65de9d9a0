"""Jobs' TensorBoard logs on this machine: each job's `tensorboard.tar.gz` artifact unpacked into one directory,
a run each, for `kerasd jobs tensorboard` (and the files a remote fit's TensorBoard callback asked for)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kerasd.errors import NotFound

ARTIFACT = "tensorboard.tar.gz"
NO_LOGS = ("has no TensorBoard log: fit it with the TensorBoard callback "
           "(callbacks=[{\"class_name\": \"TensorBoard\"}], or keras.callbacks.TensorBoard() in a remote fit)")


def extract_logs(archive: Path, target: Path) -> None:
    """The archive's log directory's content into `target`, refusing links and paths that leave it."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        top = {member.name.split("/", 1)[0] for member in members}
        for member in members:
            if member.issym() or member.islnk() or member.name.startswith("/") or ".." in member.name:
                raise ValueError(f"refusing to extract {member.name!r} from the job's TensorBoard logs")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target / "_kerasd", filter="data")
        else:  # Python 3.11 before 3.11.4: the members were checked above
            tar.extractall(target / "_kerasd")
    staging = target / "_kerasd"
    # The archive holds one directory (the worker's log_dir); its content goes where the callback said.
    inner = staging / next(iter(top)) if len(top) == 1 and (staging / next(iter(top))).is_dir() else staging
    for item in inner.iterdir():
        destination = target / item.name
        if destination.exists():
            shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
        shutil.move(str(item), destination)
    shutil.rmtree(staging, ignore_errors=True)


def run_names(jobs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """job id -> the directory of its run: its name made safe for a path (its id without a name); a name that
    two jobs share gets the id's first 8 characters after it."""
    jobs = list(jobs)
    wanted = {job["id"]: re.sub(r"[^A-Za-z0-9._-]+", "_", job.get("name") or "").strip("._") or job["id"]
              for job in jobs}
    taken = [name for name in wanted.values()]
    return {job_id: name if taken.count(name) == 1 else f"{name}-{job_id[:8]}" for job_id, name in wanted.items()}


def fetch(client: Any, job_ids: Iterable[str], logdir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """({job id: its run's directory} for the jobs with logs, {job id: why not} for the others)."""
    jobs = [client.jobs.get(job_id) for job_id in dict.fromkeys(job_ids)]
    names = run_names(jobs)
    fetched: dict[str, Path] = {}
    missing: dict[str, str] = {}
    logdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kerasd-tensorboard-") as scratch:
        for job in jobs:
            archive = Path(scratch) / f"{job['id']}.tar.gz"
            try:
                client.jobs.artifact(job["id"], ARTIFACT, archive, verbose=0)
            except NotFound:
                missing[job["id"]] = f"job {job['id']} ({job['status']}) {NO_LOGS}"
                continue
            run = logdir / names[job["id"]]
            if run.exists():
                shutil.rmtree(run)
            extract_logs(archive, run)
            fetched[job["id"]] = run
    return fetched, missing


def installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def command(logdir: Path, *, port: int, host: str) -> list[str]:
    """TensorBoard on these logs, run by this Python (the tensorboard package's own entry point)."""
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port), "--host", host]
