"""Two tenants' sweeps share a worker fairly: their trials are ordinary jobs of each tenant, so the fair scheduler
takes them in turns, one tenant's trial then the other's (keys required, one worker: tests/conftest.py)."""

from __future__ import annotations

import time
from itertools import pairwise

import httpx

from tests.seed import npz_bytes, upload, wait_for_job
from tests.tenancy import keyed_client, make_tenant
from tests.test_sweeps import MODEL, base_job, learnable_arrays


def ids_of(client: httpx.Client) -> dict[str, str]:
    dataset = upload(client, "sweep.npz", npz_bytes(**learnable_arrays())).json()
    return {"dataset": dataset["id"], "model": client.post("/v1/models", json=MODEL).json()["id"]}


def test_two_tenants_sweeps_take_the_worker_in_turns(keyed_api):
    url = keyed_api[0]
    clients = {name: keyed_client(url, make_tenant(f"sweeps-{name}")[1]) for name in ("a", "b", "blocker")}
    ids = {name: ids_of(client) for name, client in clients.items()}
    # The one worker is busy while both sweeps queue their trials, so neither tenant starts with a head start: it
    # trains until cancelled below.
    blocker = clients["blocker"].post("/v1/jobs", json=base_job(ids["blocker"], epochs=100_000)).json()["id"]
    deadline = time.monotonic() + 300
    while clients["blocker"].get(f"/v1/jobs/{blocker}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the blocking job did not start"
        time.sleep(0.3)
    sweeps = {}
    for name in ("a", "b"):
        created = clients[name].post("/v1/sweeps", json={
            "job": base_job(ids[name], epochs=1), "algorithm": "random", "seed": 1,
            "space": {"compile.optimizer.config.learning_rate": {"log_uniform": [1e-3, 1e-1]}},
            "objective": {"metric": "val_loss"}, "budget": {"max_trials": 3, "max_concurrent": 3}})
        assert created.status_code == 201, created.text
        sweeps[name] = created.json()["id"]
    assert clients["blocker"].post(f"/v1/jobs/{blocker}/cancel").status_code == 202
    assert wait_for_job(clients["blocker"], blocker)["status"] == "cancelled"
    started = []
    for name, sweep_id in sweeps.items():
        deadline = time.monotonic() + 600
        while (sweep := clients[name].get(f"/v1/sweeps/{sweep_id}").json())["status"] == "running":
            assert time.monotonic() < deadline, sweep
            time.sleep(0.5)
        assert sweep["counts"] == {"succeeded": 3}, sweep
        started += [(clients[name].get(f"/v1/jobs/{t['job_id']}").json()["started_at"], name) for t in sweep["trials"]]
    order = [name for _at, name in sorted(started)]
    assert all(first != second for first, second in pairwise(order)), order
