"""A sweep outlives a worker: its worker SIGKILLed mid-trial, the trial resumes from its checkpoint on another
worker and the sweep goes on to its last trial, with no client watching (a stack of its own, as
tests/test_fault_tolerance.py runs, with a short lease and a quick reaper)."""

from __future__ import annotations

import httpx

from tests.seed import wait_for_job
from tests.test_fault_tolerance import (  # noqa: F401  (stack: a fixture)
    kill_after_two_epochs,
    seed_ids,
    slow_fit,
    stack,
    wait_for,
)


def test_a_sweep_whose_worker_is_killed_mid_trial_resumes_that_trial_and_finishes(stack):  # noqa: F811
    first = stack.worker()
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        ids = seed_ids(client)
        created = client.post("/v1/sweeps", json={
            "job": slow_fit(ids, epochs=5), "algorithm": "grid", "seed": 0,
            "space": {"compile.optimizer.config.learning_rate": {"choice": [0.001, 0.002, 0.003]}},
            "objective": {"metric": "val_loss"}, "budget": {"max_trials": 3, "max_concurrent": 1}})
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        first_job = created.json()["trials"][0]["job_id"]
        seen = kill_after_two_epochs(client, first, first_job, epochs=5)  # during the first trial
        stack.worker()
        resumed = wait_for_job(client, first_job, timeout_s=300)
        assert resumed["status"] == "succeeded", resumed["error"]
        assert resumed["attempt"] == 2
        assert resumed["result"]["resumed_from_epoch"] in (len(seen["epochs"]), len(seen["epochs"]) + 1), resumed
        sweep = wait_for(lambda: (lambda s: s if s["status"] != "running" and all(
            t["objective"] is not None for t in s["trials"]) else None)(client.get(f"/v1/sweeps/{sweep_id}").json()),
            timeout_s=600, every_s=0.5)
        assert sweep["status"] == "completed" and sweep["counts"] == {"succeeded": 3}
        assert sorted(t["params"]["compile.optimizer.config.learning_rate"] for t in sweep["trials"]) == [
            0.001, 0.002, 0.003]
        assert sweep["trials"][0]["objective"] == min(resumed["history"]["val_loss"])
