"""Runs as experiments from the SDK (both clients) and the CLI, against the real API and worker: lists that follow
pages, renames and tags, comparisons as records, a remote fit with a name and tags, and `kerasd jobs tensorboard`
serving a job's TensorBoard logs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time

import httpx
import pytest

import kerasd
from tests.runs import insert_run, model_of
from tests.seed import seed_arrays
from tests.services import free_port, kerasd_command
from tests.tenancy import make_tenant


@pytest.fixture(scope="module")
def api(keyed_api):
    return keyed_api[0]


@pytest.fixture(scope="module")
def tenant(api, server_env):
    """A tenant with eight finished runs tagged 'sdk' (val_loss best 0.8 .. 0.1) and one untagged."""
    from app.core.database import session_scope

    tenant_id, key = make_tenant("clients")
    with session_scope() as session:
        model_id = model_of(session, tenant_id)
        runs = [insert_run(session, tenant_id, model_id, name=f"lr-{index}", tags=["sdk", f"i{index}"],
                           params={"optimizer": "Adam", "optimizer.learning_rate": 10.0 ** -index},
                           epochs=[{"loss": 1.0, "val_loss": 0.9}, {"loss": 0.5, "val_loss": (8 - index) / 10}])
                for index in range(8)]
        insert_run(session, tenant_id, model_id, name="untagged")
    return {"key": key, "runs": runs}


def cli(api: str, key: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(kerasd_command(*args, "--url", api, "--api-key", key), capture_output=True, text=True,
                          timeout=120)


def table_rows(text: str) -> list[dict[str, str]]:
    """A printed table's rows by the header's column names (a column starts where its name does)."""
    header, *lines = text.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    names = header.split()
    return [{name: line[start:end].strip() for name, start, end in zip(names, starts, [*starts[1:], None],
                                                                      strict=True)} for line in lines]


def test_the_sdk_lists_page_after_page_renames_and_compares(api, tenant, monkeypatch):
    import kerasd.experiments

    runs = tenant["runs"]
    with kerasd.Client(api, api_key=tenant["key"], verbose=0) as client:
        monkeypatch.setattr(kerasd.experiments, "MAX_PAGE", 3)  # three requests for eight jobs
        everything = client.jobs.list(tags=["sdk"], sort="metrics.val_loss.best", limit=None)
        assert [job["id"] for job in everything] == runs[::-1] and everything.next_cursor is None
        first = client.jobs.list(tags=["sdk"], sort="-params.optimizer.learning_rate", limit=4, total="exact")
        assert [job["id"] for job in first] == runs[:4] and first.total == 8 and first.next_cursor
        assert [job["name"] for job in client.jobs.list(name="lr-", sort="-name", limit=2)] == ["lr-7", "lr-6"]

        renamed = client.jobs.update(runs[0], name="best", add_tags=["keep"], notes="lr 1")
        assert (renamed["name"], renamed["tags"], renamed["notes"]) == ("best", ["i0", "keep", "sdk"], "lr 1")
        cleared = client.jobs.update(runs[0], name=None, remove_tags=("keep",))
        assert (cleared["name"], cleared["tags"], cleared["notes"]) == (None, ["i0", "sdk"], "lr 1")

        compared = client.jobs.compare(runs[:3])
        assert [record["id"] for record in compared] == runs[:3]
        assert compared[1]["params.optimizer.learning_rate"] == 0.1 and compared[1]["metrics.val_loss.best"] == 0.7
        assert compared[2]["metrics.val_loss.best_epoch"] == 1 and compared[2]["name"] == "lr-2"
        assert compared.differing_params == ["optimizer.learning_rate"]
        assert compared.histories[:2] == [{"id": runs[0], "name": None, "epoch": 0, "loss": 1.0, "val_loss": 0.9},
                                          {"id": runs[0], "name": None, "epoch": 1, "loss": 0.5, "val_loss": 0.8}]
        assert len(compared.histories) == 6

    async def the_async_twins():
        async with kerasd.AsyncClient(api, api_key=tenant["key"], verbose=0) as client:
            listed = await client.jobs.list(tags=["sdk", "i3"])
            compared = await client.jobs.compare(runs[:3])
            updated = await client.jobs.update(runs[3], add_tags=["async"])
            return listed, compared, updated

    listed, compared_async, updated = asyncio.run(the_async_twins())
    assert [job["id"] for job in listed] == [runs[3]]
    assert list(compared_async) == list(compared) and compared_async.histories == compared.histories
    assert updated["tags"] == ["async", "i3", "sdk"]


def test_the_cli_lists_tags_renames_and_compares(api, tenant):
    runs, key = tenant["runs"], tenant["key"]
    listed = cli(api, key, "jobs", "list", "--tag", "sdk", "--sort", "-val_loss", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    rows = table_rows(listed.stdout)
    assert list(rows[0]) == ["ID", "NAME", "TAGS", "KIND", "STATUS", "metrics.val_loss.best", "CREATED"]
    assert [row["ID"] for row in rows] == [runs[0], runs[1], runs[2]]
    assert [row["metrics.val_loss.best"] for row in rows] == ["0.8", "0.7", "0.6"]
    assert [row["NAME"] for row in rows[1:]] == ["lr-1", "lr-2"] and rows[2]["TAGS"] == "i2,sdk"
    as_json = json.loads(cli(api, key, "jobs", "list", "--tag", "i5", "--json").stdout)
    assert [item["id"] for item in as_json["items"]] == [runs[5]] and as_json["total"] == 1

    tagged = cli(api, key, "jobs", "tag", runs[6], "cli", "second")
    assert tagged.returncode == 0 and "tags: cli, i6, sdk, second" in tagged.stdout, tagged.stderr
    untagged = cli(api, key, "jobs", "tag", runs[6], "second", "--remove")
    assert "tags: cli, i6, sdk" in untagged.stdout
    updated = cli(api, key, "jobs", "update", runs[6], "--name", "renamed", "--notes", "from the CLI")
    assert updated.returncode == 0 and "name: renamed" in updated.stdout, updated.stderr
    assert cli(api, key, "jobs", "update", runs[6], "--name", "").stdout.count("name: (none)") == 1

    compared = cli(api, key, "jobs", "compare", runs[1], runs[2])
    assert compared.returncode == 0, compared.stderr
    header, *lines = compared.stdout.splitlines()
    assert header.split() == ["lr-1", "lr-2"]
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in lines) if len(cells) == 3}
    assert rows["optimizer.learning_rate"] == ["0.1", "0.01"] and "optimizer" not in rows
    assert rows["val_loss (best)"] == ["0.7", "0.6"] and rows["loss (final)"] == ["0.5", "0.5"]
    assert rows["status"] == ["succeeded", "succeeded"]
    unknown = cli(api, key, "jobs", "compare", runs[1], "f" * 32)
    assert unknown.returncode == 1 and "f" * 32 in unknown.stderr


def test_a_remote_fit_named_and_tagged_then_its_logs_in_tensorboard(api, tenant, tmp_path):
    import keras

    key = tenant["key"]
    arrays = seed_arrays(3)
    with kerasd.Client(api, api_key=key, verbose=0) as client:
        remote = client.remote(keras.Sequential([keras.Input((72,)), keras.layers.Dense(10, activation="softmax")]))
        remote.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy",
                       metrics=["categorical_accuracy"])
        history = remote.fit(arrays["train_x"], arrays["train_y"], epochs=2, batch_size=100, verbose=0,
                             callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path / "local"))],
                             name="remote tb/1", tags=["remote"])
        job = client.jobs.get(history.job["id"])
    assert (job["name"], job["tags"]) == ("remote tb/1", ["remote"])
    assert job["params"]["optimizer"] == "Adam"
    assert job["params"]["optimizer.learning_rate"] == pytest.approx(0.01)
    assert job["metrics"]["loss"]["final"] == history.history["loss"][-1]

    logdir, port = tmp_path / "board", free_port()
    board = subprocess.Popen(kerasd_command("jobs", "tensorboard", job["id"], tenant["runs"][0], "--logdir",
                                            str(logdir), "--port", str(port), "--url", api, "--api-key", key),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        page = None
        deadline = time.monotonic() + 120
        while page is None and time.monotonic() < deadline and board.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.5)
        assert page is not None and page.status_code == 200, board.stderr.read() if board.poll() is not None else ""
        assert "tensorboard" in page.text.lower()
        runs = httpx.get(f"http://127.0.0.1:{port}/data/runs", timeout=10).json()
        assert any(run.startswith("remote_tb_1") for run in runs), runs
    finally:
        os.killpg(board.pid, signal.SIGTERM)
        out, err = board.communicate(timeout=30)
    assert "has no TensorBoard log" in err and tenant["runs"][0] in err
    assert "TensorBoard logs of 1 job(s)" in out
    assert list((logdir / "remote_tb_1").rglob("events.out.tfevents*"))
    only_missing = cli(api, key, "jobs", "tensorboard", tenant["runs"][0], "--no-start", "--logdir", str(logdir))
    assert only_missing.returncode == 1 and "no TensorBoard logs to show" in only_missing.stderr
