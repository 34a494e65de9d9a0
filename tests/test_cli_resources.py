"""The CLI covers what the server does, as a person meets it: models and datasets listed, shown and deleted, ids
by the prefix the dashboard shows, `--status` from the server's statuses, CSV uploads with their columns (and
one without a header refused, by the CLI and the SDK), and `jobs get` as readable text or `--json`."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import numpy as np
import pytest

import kerasd
from tests.sdk_scripts import seed_ids
from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, upload, wait_for_job
from tests.services import kerasd_command

CSV = "f1,f2,f3,label\n" + "".join(f"{i * 0.5},{i % 3},{1 - i * 0.1:.1f},{i % 2}\n" for i in range(10))


def cli(api_url: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(kerasd_command(*args, "--url", api_url), capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_models_list_get_and_delete_by_a_prefix(api_url: str) -> None:
    created = httpx.post(f"{api_url}/v1/models", json={**SEED_MODEL, "name": "cli_models"}, timeout=120).json()
    listed = cli(api_url, "models", "list", "--limit", "500")
    assert listed.returncode == 0 and re.search(rf"^{created['id']}  cli_models  3,722 params", listed.stdout, re.M)
    shown = cli(api_url, "models", "get", created["id"][:8])
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"^model +{created['id']}$", shown.stdout, re.M) and "params    3,722" in shown.stdout
    as_json = json.loads(cli(api_url, "models", "get", created["id"], "--json").stdout)
    assert as_json["id"] == created["id"] and as_json["summary"]["total_params"] == 3722

    other = created["id"][:30] + ("0" if created["id"][30] != "0" else "1")
    missing = cli(api_url, "models", "get", other)
    assert missing.returncode == 1 and f"no model has an id that starts with '{other}'" in missing.stderr

    deleted = cli(api_url, "models", "delete", created["id"][:10])
    assert deleted.returncode == 0 and f"model {created['id']} deleted" in deleted.stdout
    gone = cli(api_url, "models", "get", created["id"])
    assert gone.returncode == 1 and "404 Not Found" in gone.stderr and "Traceback" not in gone.stderr


def test_datasets_list_get_delete_and_csv_uploads_with_columns(api_url: str, tmp_path) -> None:
    (tmp_path / "table.csv").write_text(CSV)
    uploaded = cli(api_url, "datasets", "upload", "table.csv", "--y-columns", "label", "--json", cwd=tmp_path)
    assert uploaded.returncode == 0, uploaded.stderr
    dataset = json.loads(uploaded.stdout)
    assert dataset["arrays"] == [{"name": "x", "shape": [10, 3], "dtype": "float32"},
                                 {"name": "y", "shape": [10, 1], "dtype": "float32"}]
    listed = cli(api_url, "datasets", "list", "--limit", "500")
    assert re.search(rf"^{dataset['id']}  table.csv  x\(10, 3\) float32, y\(10, 1\) float32$", listed.stdout, re.M)
    shown = cli(api_url, "datasets", "get", dataset["id"][:8])
    assert shown.returncode == 0 and "arrays    x(10, 3) float32, y(10, 1) float32" in shown.stdout, shown.stderr

    with kerasd.Client(api_url, verbose=0) as client:
        chosen = client.datasets.upload(tmp_path / "table.csv", x_columns=["f1", "f3"], y_columns="label")
        assert [array["shape"] for array in chosen["arrays"]] == [[10, 2], [10, 1]]
        stored = client.datasets.download(chosen["id"])
        assert np.array_equal(stored["x"][:, 0], np.arange(10) * 0.5)

        # A CSV whose first row is data: the server would take it for the header and lose it, so it is refused.
        (tmp_path / "no_header.csv").write_text(CSV.split("\n", 1)[1])
        before = client.datasets.list(limit=500).total
        with pytest.raises(ValueError, match="as a CSV it has no header row"):
            client.datasets.upload(tmp_path / "no_header.csv")
        refused = cli(api_url, "datasets", "upload", "no_header.csv", cwd=tmp_path)
        assert refused.returncode == 1 and "Add a header row" in refused.stderr and "Traceback" not in refused.stderr
        assert client.datasets.list(limit=500).total == before

    deleted = cli(api_url, "datasets", "delete", dataset["id"][:8])
    assert deleted.returncode == 0 and f"dataset {dataset['id']} deleted" in deleted.stdout


def test_jobs_list_takes_the_servers_statuses_only(api_url: str) -> None:
    wrong = cli(api_url, "jobs", "list", "--status", "done")
    assert wrong.returncode == 2 and "invalid choice: 'done'" in wrong.stderr and "'succeeded'" in wrong.stderr


def test_jobs_get_is_readable_text_and_json_for_machines(api_url: str, client: httpx.Client) -> None:
    ids = seed_ids(client)
    # More epochs than any machine trains in the 2 s limit.
    request = fit_request(ids["model"], ids["dataset"], epochs=100_000, batch_size=10) | {"time_limit_s": 2}
    job_id = client.post("/v1/jobs", json=request).json()["id"]
    job = wait_for_job(client, job_id, timeout_s=180)
    assert job["status"] == "failed" and job["error"]["type"] == "timeout"

    shown = cli(api_url, "jobs", "get", job_id[:8])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert re.search(rf"^job +{job_id}$", text, re.M) and "status    fit failed, attempt 1 of" in text
    assert re.search(rf"^epochs    {len(job['epochs'])} of 100000$", text, re.M), text
    if job["epochs"]:
        assert re.search(r"^metrics   .*loss \d.*\(last epoch\)$", text, re.M), text
    # Where the time limit stopped it, in words: no Python dict.
    assert re.search(r"^error     timeout: the job ran past its time limit of 2 s and was stopped at epoch \d+, "
                     r"batch \d+;", text, re.M), text
    assert "{" not in text and "'epoch'" not in text
    document = json.loads(cli(api_url, "jobs", "get", job_id, "--json").stdout)
    assert document["id"] == job_id and document["error"]["type"] == "timeout"


def test_jobs_retry_requeues_a_cancelled_job_and_refuses_a_queued_one(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=120) as client:
        dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        model = client.post("/v1/models", json=SEED_MODEL).json()["id"]
        # No worker serves the one-GPU queue here: the job stays where the commands put it.
        job_id = client.post("/v1/jobs", json=fit_request(model, dataset, epochs=1)
                             | {"resources": {"gpus": 1}}).json()["id"]
        refused = cli(api_url, "jobs", "retry", job_id[:8])
        assert refused.returncode != 0 and "queued" in refused.stderr, refused.stdout + refused.stderr
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        retried = cli(api_url, "jobs", "retry", job_id[:8])
        assert retried.returncode == 0, retried.stderr
        assert re.fullmatch(rf"{job_id}  queued \(attempt \d+\)\n", retried.stdout), retried.stdout
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        cancelled = cli(api_url, "jobs", "cancel", job_id, "--json")
        assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled", cancelled.stderr
        again = json.loads(cli(api_url, "jobs", "retry", job_id, "--json").stdout)
        assert again["id"] == job_id and again["status"] == "queued"
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
