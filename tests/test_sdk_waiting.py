"""What the SDK and the CLI say while a job waits and when things fail, through real processes: a queued job's
position, a server that goes away mid-fit, Ctrl-C in `fit` and in `kerasd jobs watch`, an unreachable server or a
wrong URL, and the progress bar in a notebook (Jupyter's markers) and in a log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from urllib.parse import urlparse

import httpx
import pytest

import kerasd
from tests.sdk_helpers import OutageProxy
from tests.sdk_scripts import Lines, fit_process, seed_ids, takes_ctrl_c
from tests.seed import fit_request, wait_for_job
from tests.services import free_port, kerasd_command

JOB_ID = r"([0-9a-f]{32})"


@pytest.fixture(scope="module")
def ids(api_url: str) -> dict[str, str]:
    with httpx.Client(base_url=api_url, timeout=120) as http:
        return seed_ids(http)


def submit_running(client: httpx.Client, ids: dict[str, str], epochs: int = 100_000) -> str:
    """A fit job that trains until it is cancelled, once a worker runs it."""
    created = client.post("/v1/jobs", json=fit_request(ids["model"], ids["dataset"], epochs=epochs, batch_size=10))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    return job_id


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(kerasd_command(*args), capture_output=True, text=True, timeout=120,
                          env=env or {k: v for k, v in os.environ.items() if k != "KERASD_URL"})


def test_a_queued_fit_says_its_position_until_a_worker_takes_it(api_url, client, ids) -> None:
    blocker = submit_running(client, ids)
    fit = fit_process(api_url, epochs=2)
    watch = None
    try:
        errors, output = Lines(fit.stderr), Lines(fit.stdout)
        queued = errors.wait_for(rf"^job {JOB_ID} is queued: position 1 in the queue", 180).group(1)
        assert "Epoch 1/2" not in output.text
        # The CLI says the same of that job, found by the 8 characters the dashboard shows.
        watch = subprocess.Popen(kerasd_command("jobs", "watch", queued[:8], "--url", api_url),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watched = Lines(watch.stderr)
        watched.wait_for(rf"^job {queued} is queued: position 1 in the queue", 120)
        assert client.post(f"/v1/jobs/{blocker}/cancel").status_code in (200, 202)
        assert fit.wait(timeout=300) == 0, errors.all()
        assert watch.wait(timeout=300) == 0, watched.all()
    finally:
        for process in (fit, watch):
            if process is not None and process.poll() is None:
                process.kill()
    assert re.search(rf"^job {queued} started after \d+ s in the queue$", errors.all(), re.M), errors.text
    assert re.findall(r"^Epoch (\d)/2$", output.all(), re.M) == ["1", "2"], output.text
    assert re.search(rf"^job {queued} started after", watched.all(), re.M)
    assert re.search(rf"^job {queued} succeeded$", watch.stdout.read(), re.M)


def test_a_queued_job_found_ended_at_the_next_look_is_said_to_have_started_if_a_worker_ran_it() -> None:
    # A job shorter than the second between two looks is seen queued, then already ended: it did start.
    from io import StringIO

    from kerasd.progress import QueueNotice

    for seen, said in (({"status": "succeeded", "started_at": "2026-12-06T09:00:01Z"}, "started"),
                       ({"status": "running", "started_at": "2026-12-06T09:00:01Z"}, "started"),
                       ({"status": "cancelled", "started_at": None}, "cancelled")):
        out = StringIO()
        notice = QueueNotice("j1", stream=out, grace_s=0)
        notice.update({"status": "queued", "queue_position": 1})
        notice.close(seen)
        assert re.fullmatch(rf"job j1 is queued: position 1 in the queue \(1 = next\), waiting 0 s for a worker\n"
                            rf"job j1 {said} after 0 s in the queue\n", out.getvalue()), out.getvalue()


def test_a_fit_says_when_the_server_goes_away_and_goes_on_when_it_is_back(api_url) -> None:
    proxy = OutageProxy(urlparse(api_url).port, down_after=2, down_for_s=3)
    try:
        fit = fit_process(proxy.url, epochs=8, batch_size=20)
        out, err = fit.communicate(timeout=400)
    finally:
        proxy.close()
    assert fit.returncode == 0, err[-5000:]
    assert proxy.outages == 1
    lost = re.search(rf"^kerasd: lost the connection to {proxy.url} while following job {JOB_ID} \(\w+", err, re.M)
    assert lost, err
    assert f"`kerasd jobs watch {lost.group(1)}` follows it" in err
    # Nothing lost or shown twice across the outage.
    assert re.findall(r"^Epoch (\d)/8$", out, re.M) == [str(n) for n in range(1, 9)], out
    assert len(re.findall(r"^50/50 \[=+\].*val_loss: ", out, re.M)) == 8, out
    assert "history epochs: [0, 1, 2, 3, 4, 5, 6, 7]" in out


def test_ctrl_c_in_fit_cancels_the_job_and_says_so_briefly(api_url, client) -> None:
    fit = fit_process(api_url, epochs=500, batch_size=10)
    try:
        errors = Lines(fit.stderr)
        Lines(fit.stdout).wait_for(r"^Epoch 2/500$", 240)
        fit.send_signal(signal.SIGINT)
        fit.wait(timeout=120)
        err = errors.all()
    finally:
        if fit.poll() is None:
            fit.kill()
    said = re.search(rf"^kerasd: job {JOB_ID} was cancelled \(Ctrl-C\)", err, re.M)
    assert said, err
    job_id = said.group(1)
    assert err.rstrip().endswith(f"KeyboardInterrupt: job {job_id} cancelled"), err
    # The user's script, fit and the SDK's two frames: no trace through httpx.
    assert err.count('  File "') <= 5 and "httpx" not in err, err
    assert wait_for_job(client, job_id, timeout_s=120)["status"] == "cancelled"


def test_ctrl_c_in_jobs_watch_says_the_job_goes_on(api_url, client, ids) -> None:
    job_id = submit_running(client, ids)
    watch = subprocess.Popen(kerasd_command("jobs", "watch", job_id, "--url", api_url), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=takes_ctrl_c)
    try:
        Lines(watch.stdout).wait_for(r"^Epoch 1/100000$", 120)
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=60) == 130
        err = watch.stderr.read()
    finally:
        if watch.poll() is None:
            watch.kill()
    assert f"Job {job_id} goes on running on the server" in err and f"kerasd jobs watch {job_id}" in err, err
    assert "Traceback" not in err
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    client.post(f"/v1/jobs/{job_id}/cancel")
    assert wait_for_job(client, job_id, timeout_s=120)["status"] == "cancelled"


def test_an_unreachable_server_is_named_with_where_its_url_came_from(monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(kerasd.APIConnectionError) as given:
        kerasd.Client(url, timeout=5).version()
    message = str(given.value)
    assert f"cannot reach the kerasd API at {url}" in message and f"GET {url}/version" in message
    assert "Client(base_url=...)" in message and "`kerasd up`" in message and "Connection refused" in message

    monkeypatch.setenv("KERASD_URL", url)
    with pytest.raises(kerasd.APIConnectionError, match="the URL comes from KERASD_URL"):
        kerasd.Client(timeout=5).jobs.list()

    by_option = cli("jobs", "list", "--url", url)
    assert by_option.returncode == 1 and "Traceback" not in by_option.stderr
    assert f"cannot reach the kerasd API at {url}" in by_option.stderr and "from --url" in by_option.stderr
    assert "`kerasd up`" in by_option.stderr
    by_env = cli("models", "list", env={**os.environ, "KERASD_URL": url})
    assert by_env.returncode == 1 and "the URL comes from KERASD_URL" in by_env.stderr, by_env.stderr


def test_a_base_url_ending_in_v1_says_to_drop_it(api_url) -> None:
    with pytest.raises(kerasd.NotFound) as wrong:
        kerasd.Client(f"{api_url}/v1", verbose=0).jobs.list()
    assert f"GET {api_url}/v1/v1/jobs" in str(wrong.value) and "without the trailing /v1" in str(wrong.value)
    by_cli = cli("jobs", "list", "--url", f"{api_url}/v1")
    assert by_cli.returncode == 1 and "without the trailing /v1" in by_cli.stderr and "--url" in by_cli.stderr


def test_progress_is_one_updating_line_per_epoch_in_a_notebook_and_one_line_in_a_log(api_url) -> None:
    notebook = fit_process(api_url, epochs=3, batch_size=10, jupyter=True, text=False)
    log = fit_process(api_url, epochs=3, batch_size=10)
    raw, err = notebook.communicate(timeout=400)
    assert notebook.returncode == 0, err[-5000:]
    out = raw.decode()
    lines = out.split("\n")
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"], out
    bars = [line for line in lines if "/100" in line]
    # Keras's own Progbar: each epoch's updates redraw one line (`\r`), which ends with the epoch's metrics.
    assert len(bars) == 3 and all(bar.startswith("\r") and "━" in bar for bar in bars), out
    assert all("val_loss:" in bar.rsplit("\r", 1)[-1] for bar in bars), out
    assert "[=" not in out

    logged, err = log.communicate(timeout=400)
    assert log.returncode == 0, err[-5000:]
    assert "\r" not in logged and "\x1b[" not in logged, logged
    # A line per epoch header, one per finished epoch, and the script's own: no line per update.
    assert len(re.findall(r"^100/100 \[=+\] \d+s \S+/step - .*val_loss: ", logged, re.M)) == 3, logged
    assert logged.count("\n") == 3 + 3 + 1, logged
