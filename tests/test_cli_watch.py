"""`kerasd jobs watch ID` as a command of its own (not `jobs submit --watch`): it follows a running job to
its end with Keras's epoch lines, replays a finished one at once, and exits 0 only for a job that succeeded."""

from __future__ import annotations

import json
import re
import subprocess
import threading

import pytest

from tests.holds import running_until_cancelled, wait_until
from tests.seed import fit_request, seed_arrays, submit, upload_seed, wait_for_job
from tests.services import kerasd_command


@pytest.fixture(scope="module")
def ids(api_url: str) -> dict[str, str]:
    return upload_seed(api_url, seed_arrays())


def watch(api_url: str, job_id: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*kerasd_command("jobs", "watch", job_id, "--url", api_url, *extra)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def collect(stream) -> list[str]:
    """The lines of `stream`, appended as they arrive by a thread of their own."""
    lines: list[str] = []

    def read() -> None:
        for line in stream:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_watch_follows_a_running_job_to_its_end_then_replays_it(api_url, client, ids) -> None:
    epochs = 30
    # The worker trains another job until it is cancelled: the watched job waits in the queue meanwhile, so
    # the command is following it before it starts, however fast this machine trains.
    blocker = running_until_cancelled(client, ids["model"], ids["dataset"], batch_size=10)
    job_id = submit(client, fit_request(ids["model"], ids["dataset"], epochs=epochs, batch_size=10))
    process = subprocess.Popen(
        [*kerasd_command("jobs", "watch", job_id, "--url", api_url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = collect(process.stderr)
    try:
        notice = wait_until(lambda: [line for line in stderr if "is queued" in line], what="the queue notice")
        assert f"job {job_id} is queued: position 1 in the queue" in notice[0], notice
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert client.post(f"/v1/jobs/{blocker}/cancel").status_code == 202
        first = process.stdout.readline()
        assert first == f"Epoch 1/{epochs}\n", first + "".join(stderr)
        rest = process.stdout.read()
        process.wait(timeout=300)
        errors = "".join(stderr)
    finally:
        if process.poll() is None:
            process.kill()
    followed = first + rest
    assert process.returncode == 0, followed + errors
    numbers = [int(n) for n in re.findall(rf"^Epoch (\d+)/{epochs}$", followed, re.M)]
    assert numbers == list(range(1, epochs + 1)), followed
    assert re.search(rf"^job {job_id} succeeded$", followed, re.M), followed
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and len(job["epochs"]) == epochs

    # A finished job: its whole progress again at once, then its final document with --json.
    again = watch(api_url, job_id)
    assert again.returncode == 0, again.stderr
    assert [int(n) for n in re.findall(rf"^Epoch (\d+)/{epochs}$", again.stdout, re.M)] == numbers
    replayed = watch(api_url, job_id, "--json")
    assert replayed.returncode == 0, replayed.stderr
    document = json.loads(replayed.stdout)
    assert document["id"] == job_id and document["status"] == "succeeded"
    assert len(document["history"]["loss"]) == epochs


def test_watch_exits_1_for_a_cancelled_job(api_url, client, ids) -> None:
    job_id = submit(client, fit_request(ids["model"], ids["dataset"], epochs=500, batch_size=10))
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    assert wait_for_job(client, job_id, timeout_s=120)["status"] == "cancelled"
    watched = watch(api_url, job_id)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert re.search(rf"^job {job_id} cancelled", watched.stdout, re.M), watched.stdout


def test_watch_of_an_unknown_job_is_a_404_message(api_url) -> None:
    missing = watch(api_url, "0" * 32)
    assert missing.returncode == 1 and "404 Not Found" in missing.stderr and "Traceback" not in missing.stderr
