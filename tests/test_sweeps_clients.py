"""Sweeps from the SDK (both clients) and the CLI, against the real API and worker: a sweep created, waited for,
its best trial, the list; `kerasd sweeps create FILE --wait`, `get`, `list`, and `cancel` of an ended sweep."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import pytest

import kerasd
from tests.seed import npz_bytes, upload
from tests.services import kerasd_command
from tests.test_sweeps import MODEL, base_job, learnable_arrays


@pytest.fixture(scope="module")
def ids(api_url: str) -> dict[str, str]:
    with httpx.Client(base_url=api_url, timeout=120) as http:
        dataset = upload(http, "sweep.npz", npz_bytes(**learnable_arrays())).json()
        model = http.post("/v1/models", json=MODEL).json()
        return {"dataset": dataset["id"], "model": model["id"]}


def sweep_body(ids: dict[str, str], **extra) -> dict:
    return {"job": base_job(ids, epochs=1), "algorithm": "random", "seed": 2,
            "space": {"compile.optimizer.config.learning_rate": {"log_uniform": [1e-3, 1e-1]}},
            "objective": {"metric": "val_loss"}, "budget": {"max_trials": 2, "max_concurrent": 2}, **extra}


def test_the_sdk_creates_waits_for_and_reads_a_sweep_with_both_clients(api_url, ids):
    client = kerasd.Client(api_url)
    sweep = client.sweeps.create(sweep_body(ids), name="from-sdk")
    assert sweep["name"] == "from-sdk" and sweep["trials_created"] == 2
    done = client.sweeps.wait(sweep["id"], timeout=600)
    assert done["status"] == "completed" and done["counts"] == {"succeeded": 2}
    best = client.sweeps.best(sweep["id"])
    assert best == min(done["trials"], key=lambda trial: trial["objective"])
    assert sweep["id"] in [item["id"] for item in client.sweeps.list()]

    async def read() -> tuple[dict, list]:
        async with kerasd.AsyncClient(api_url) as aclient:
            return await aclient.sweeps.get(sweep["id"]), await aclient.sweeps.list(limit=1)

    async def stream() -> list[dict]:
        async with kerasd.AsyncClient(api_url) as aclient:
            return [event async for event in aclient.sweeps.events(sweep["id"])]

    got, first_page = asyncio.run(read())
    assert got["trials"] == done["trials"] and len(first_page) == 1
    # An ended sweep's stream: every trial as it ended, then the sweep's end.
    streamed = list(client.sweeps.events(sweep["id"]))
    assert [event["data"] for event in streamed[:-1]] == done["trials"]
    assert streamed[-1]["type"] == "sweep" and streamed[-1]["data"]["best"] == done["best"]
    def untimed(events: list[dict]) -> list[dict]:
        return [{key: value for key, value in event.items() if key != "ts"} for event in events]

    assert untimed(asyncio.run(stream())) == untimed(streamed)
    with pytest.raises(kerasd.errors.APIError) as refused:
        client.sweeps.cancel(sweep["id"])
    assert refused.value.status_code == 409


def test_the_cli_creates_a_sweep_from_a_file_and_shows_its_trials(api_url, ids, tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep_body(ids, name="from-cli")))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(kerasd_command("sweeps", *args, "--url", api_url), capture_output=True, text=True,
                              timeout=900)

    created = cli("create", str(path), "--wait", "--json")
    assert created.returncode == 0, created.stderr
    sweep = json.loads(created.stdout)
    assert sweep["status"] == "completed" and len(sweep["trials"]) == 2
    shown = cli("get", sweep["id"][:10])
    assert shown.returncode == 0, shown.stderr
    assert "compile.optimizer.config.learning_rate" in shown.stdout
    assert f"best: trial {sweep['best']['number']} (job {sweep['best']['job_id']})" in shown.stdout
    watched = cli("watch", sweep["id"])
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("trial 0 succeeded  objective ")
    assert lines[-1].startswith(f"sweep completed, best: trial {sweep['best']['number']} = ")
    listed = cli("list")
    assert sweep["id"] in listed.stdout and "from-cli" in listed.stdout
    again = cli("cancel", sweep["id"])
    assert again.returncode == 1 and "already ended completed" in again.stderr
