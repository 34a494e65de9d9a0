"""Sweeps through the real API and worker: a random sweep runs its trials as jobs up to max_trials, never more than
max_concurrent at once, and names the best (in its `sweep.finished` webhook too); a grid sweep covers its grid (a
model path included); a median pruner stops a clearly worse trial at the end of an epoch (`pruned`, epochs and
weights kept); cancel stops a sweep's queued and running trials; a space path that is not in the base job is a 422
naming it, and nothing is stored."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest

from tests.holds import running_until_cancelled
from tests.seed import npz_bytes, ref, upload, wait_for_job
from tests.test_webhooks import Receiver, wait_until

# A task a tiny model learns within an epoch or two: the class is the largest of the first four inputs.
MODEL = {"type": "sequential", "name": "sweep_mlp", "input_shape": [8],
         "layers": [{"class_name": "Dense", "units": 8, "activation": "relu"},
                    {"class_name": "Dense", "units": 4, "activation": "softmax"}]}


def learnable_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.random((500, 8), dtype="float32")
    y = np.eye(4, dtype="float32")[np.argmax(x[:, :4], axis=1)]
    return {"train_x": x[:400], "train_y": y[:400], "val_x": x[400:], "val_y": y[400:]}


@pytest.fixture(scope="module")
def ids(api_url: str) -> dict[str, str]:
    with httpx.Client(base_url=api_url, timeout=120) as http:
        dataset = upload(http, "sweep.npz", npz_bytes(**learnable_arrays()))
        model = http.post("/v1/models", json=MODEL)
        assert dataset.status_code == 201 and model.status_code == 201, (dataset.text, model.text)
        return {"dataset": dataset.json()["id"], "model": model.json()["id"]}


def base_job(ids: dict[str, str], *, epochs: int = 2, learning_rate: float = 0.01) -> dict[str, Any]:
    dataset = ids["dataset"]
    return {"kind": "fit", "model_id": ids["model"], "seed": 3, "artifacts": ["weights.h5", "architecture.json"],
            "compile": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": learning_rate}},
                        "loss": "categorical_crossentropy", "metrics": ["categorical_accuracy"]},
            "fit": {"x": ref(dataset, "train_x"), "y": ref(dataset, "train_y"), "epochs": epochs, "batch_size": 50,
                    "shuffle": False, "validation_data": {"x": ref(dataset, "val_x"), "y": ref(dataset, "val_y")}}}


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = client.post("/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    return created.json()


def wait_for_sweep(client: httpx.Client, sweep_id: str, *, until: Any, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
        if until(sweep):
            return sweep
        time.sleep(0.5)
    raise AssertionError(f"sweep {sweep_id} did not get there in {timeout_s} s: {json.dumps(sweep)[:3000]}")


def sweep_events(client: httpx.Client, sweep_id: str, *, last_event_id: str | None = None) -> list[dict[str, Any]]:
    """Every event of the sweep's stream (after `last_event_id`) until the server ends it."""
    found = []
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with client.stream("GET", f"/v1/sweeps/{sweep_id}/events", headers=headers, timeout=600) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[len("data: "):]))
    return found


def ended(sweep: dict[str, Any]) -> bool:
    """The sweep ended and every trial's end was told to its study (a trial without an objective has a note)."""
    return sweep["status"] != "running" and all(t["objective"] is not None or t["note"] for t in sweep["trials"])


@pytest.fixture()
def receiver(client: httpx.Client) -> Any:
    """A receiver of the default tenant's `sweep.finished` deliveries, its hook deleted afterwards."""
    made = Receiver()
    hook = client.post("/v1/webhooks", json={"url": made.url, "events": ["sweep.finished"]})
    assert hook.status_code == 201, hook.text
    yield made
    client.delete(f"/v1/webhooks/{hook.json()['id']}")
    made.close()


def sweep_delivery(receiver: Any, sweep_id: str) -> dict[str, Any]:
    """The one `sweep.finished` body the receiver got about the sweep."""
    def about() -> list[dict[str, Any]]:
        with receiver.lock:
            bodies = [json.loads(request["body"]) for request in receiver.requests]
        return [body for body in bodies if body["sweep"]["id"] == sweep_id]

    [body] = wait_until(about, what=f"sweep {sweep_id}'s sweep.finished delivery")
    assert body["event"] == "sweep.finished"
    return body["sweep"]


def test_a_random_sweep_runs_max_trials_as_jobs_at_most_max_concurrent_at_once_and_names_the_best(
        client, ids, receiver):
    sweep = create(client, {
        "name": "lr", "job": base_job(ids), "algorithm": "random", "seed": 11,
        "space": {"compile.optimizer.config.learning_rate": {"log_uniform": [1e-4, 1e-1]}},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "budget": {"max_trials": 4, "max_concurrent": 2}})
    assert sweep["status"] == "running" and sweep["trials_created"] == 2
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["status"] == "completed" and done["trials_created"] == 4
    assert [t["number"] for t in done["trials"]] == [0, 1, 2, 3]
    assert done["counts"] == {"succeeded": 4}
    jobs = {}
    for trial in done["trials"]:
        rate = trial["params"]["compile.optimizer.config.learning_rate"]
        assert 1e-4 <= rate <= 1e-1
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        jobs[trial["number"]] = job
        # An ordinary job, trained with the trial's value, whose objective is the best val_loss of its epochs.
        assert job["status"] == "succeeded" and job["sweep_id"] == sweep["id"]
        assert job["request"]["compile"]["optimizer"]["config"]["learning_rate"] == rate
        assert trial["objective"] == pytest.approx(min(job["history"]["val_loss"]))
    assert len({t["params"]["compile.optimizer.config.learning_rate"] for t in done["trials"]}) == 4
    best = min(done["trials"], key=lambda t: t["objective"])
    assert done["best"] == best
    # Never more than two trials queued or running at once: when each was created, at most one other had not ended.
    for number, job in jobs.items():
        alive = [other for n, other in jobs.items() if n != number
                 and other["created_at"] <= job["created_at"] < other["finished_at"]]
        assert len(alive) <= 1, (number, [j["id"] for j in alive])
    listed = client.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted(t["job_id"] for t in done["trials"])
    assert sweep["id"] in [s["id"] for s in client.get("/v1/sweeps").json()["items"]]
    delivered = sweep_delivery(receiver, sweep["id"])
    assert delivered["status"] == "completed" and delivered["trials_created"] == 4
    assert delivered["best"] == {key: best[key] for key in ("number", "job_id", "params", "objective")}


def test_a_grid_sweep_covers_its_grid_of_stepped_ranges_once_with_model_paths_in_the_trained_architecture(
        client, ids):
    # Ranges with a step are listed as KerasTuner's GridSearch lists them: 0.01, 0.02 and 4, 16.
    rate, units = "compile.optimizer.config.learning_rate", "model.layers[0].units"
    sweep = create(client, {
        "job": base_job(ids, epochs=1), "algorithm": "grid", "seed": 1,
        "space": {rate: {"uniform": [0.01, 0.02], "step": 0.01}, units: {"int_uniform": [4, 16], "step": 12}},
        "objective": {"metric": "val_categorical_accuracy", "direction": "maximize"},
        "budget": {"max_trials": 10, "max_concurrent": 2}})
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["status"] == "completed" and done["trials_created"] == 4
    points = {(t["params"][rate], t["params"][units]) for t in done["trials"]}
    assert points == set(itertools.product([0.01, 0.02], [4, 16]))
    for trial in done["trials"]:
        architecture = client.get(f"/v1/jobs/{trial['job_id']}/artifacts/architecture.json").json()
        dense = [layer for layer in architecture["config"]["layers"] if layer["class_name"] == "Dense"]
        assert dense[0]["config"]["units"] == trial["params"][units]
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        assert job["request"]["compile"]["optimizer"]["config"]["learning_rate"] == trial["params"][rate]
    assert done["best"]["objective"] == max(t["objective"] for t in done["trials"])


# The same task as MODEL, as a functional graph whose hidden layer's name holds a dot (as names may).
FUNCTIONAL = {"type": "functional", "name": "sweep_graph", "inputs": [{"name": "features", "shape": [8]}],
              "layers": [{"name": "hidden.one", "class_name": "Dense", "units": 8, "activation": "relu",
                          "inputs": "features"},
                         {"name": "label", "class_name": "Dense", "units": 4, "activation": "softmax",
                          "inputs": "hidden.one"}],
              "outputs": "label"}


def test_a_functional_models_layer_is_swept_by_its_name_and_a_name_it_lacks_is_a_422_naming_the_path(client, ids):
    model = client.post("/v1/models", json=FUNCTIONAL)
    assert model.status_code == 201, model.text
    job = {**base_job(ids, epochs=1), "model_id": model.json()["id"]}
    before = client.get("/v1/sweeps").json()["items"]
    # A misspelled name is answered with the model's layer names; a graph's wiring is not a hyperparameter.
    for path, says in (("model.layers[name=hiden.one].units", "no layer named 'hiden.one'; the closest known "
                                                              "names are hidden.one"),
                       ("model.layers[name=label].inputs", "'inputs' wires the model's graph")):
        refused = client.post("/v1/sweeps", json={"job": job, "space": {path: {"choice": ["features", 4]}},
                                                  "objective": {"metric": "loss"}, "budget": {"max_trials": 2}})
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == f"space.{path}" and path in refused.json()["detail"]
        assert says in refused.json()["detail"], refused.json()
    assert client.get("/v1/sweeps").json()["items"] == before
    units = "model.layers[name=hidden.one].units"
    sweep = create(client, {"job": job, "algorithm": "grid", "space": {units: {"choice": [4, 12]}},
                            "objective": {"metric": "val_loss"}, "budget": {"max_trials": 2, "max_concurrent": 2}})
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["status"] == "completed" and done["counts"] == {"succeeded": 2}
    assert sorted(t["params"][units] for t in done["trials"]) == [4, 12]
    for trial in done["trials"]:
        architecture = client.get(f"/v1/jobs/{trial['job_id']}/artifacts/architecture.json").json()
        [hidden] = [layer for layer in architecture["config"]["layers"] if layer["config"]["name"] == "hidden.one"]
        assert hidden["config"]["units"] == trial["params"][units]


def test_a_grid_lists_int_and_stepped_float_ranges_as_kerastuners_grid_search_does():
    from app.core.studies import grid_values

    assert grid_values({"path": "a", "kind": "int_uniform", "low": 2, "high": 7}) == [2, 3, 4, 5, 6, 7]
    assert grid_values({"path": "a", "kind": "int_uniform", "low": 32, "high": 100, "step": 32}) == [32, 64, 96]
    # Counted in decimals: 0.1 + 2 * 0.1 is 0.3 here, not 0.30000000000000004.
    assert grid_values({"path": "a", "kind": "uniform", "low": 0.1, "high": 0.5, "step": 0.1}) == [
        0.1, 0.2, 0.3, 0.4, 0.5]
    assert grid_values({"path": "a", "kind": "choice", "choices": ["relu", "tanh"]}) == ["relu", "tanh"]
    with pytest.raises(ValueError, match="without a step"):
        grid_values({"path": "a", "kind": "log_uniform", "low": 1e-4, "high": 1e-1})


@pytest.mark.parametrize("dimension", [{"log_uniform": [1e-4, 1e-1]}, {"uniform": [0.001, 0.01]},
                                       {"int_uniform": [1, 5000]}])
def test_a_grid_sweep_refuses_a_continuous_or_too_long_range_with_a_422_naming_its_path(client, ids, dimension):
    before = client.get("/v1/sweeps").json()["items"]
    path = "compile.optimizer.config.learning_rate" if "int_uniform" not in dimension else "fit.batch_size"
    refused = client.post("/v1/sweeps", json={
        "job": base_job(ids), "algorithm": "grid", "space": {path: dimension}, "objective": {"metric": "loss"},
        "budget": {"max_trials": 2}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == f"space.{path}" and path in refused.json()["detail"]
    assert ("continuous" if "int_uniform" not in dimension else "5000 values") in refused.json()["detail"]
    assert client.get("/v1/sweeps").json()["items"] == before


def test_a_median_pruner_stops_a_clearly_worse_trial_at_the_end_of_an_epoch_keeping_its_epochs_and_weights(
        client, ids):
    # One trial at a time; a learning rate of 1e-7 learns nothing, so its loss at every epoch is clearly above that
    # of a trial that learns. Optuna's grid sampler gives trial n the n-th point of the grid shuffled by its seed:
    # with seed 4 the two that learn come first, finish (the pruner waits for two), and the third is judged.
    epochs = 4
    sweep = create(client, {
        "job": base_job(ids, epochs=epochs), "algorithm": "grid", "seed": 4,
        "space": {"compile.optimizer.config.learning_rate": {"choice": [0.05, 0.03, 1e-7]}},
        "objective": {"metric": "loss", "direction": "minimize"},
        "budget": {"max_trials": 3, "max_concurrent": 1},
        "early_stopping": {"rule": "median", "startup_trials": 2}})
    # Followed live: the sweep's event stream from its start to its end.
    streamed = sweep_events(client, sweep["id"])
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "completed"
    assert streamed[-1]["type"] == "sweep" and streamed[-1]["data"]["best"] == done["best"]
    trial_events = [event["data"] for event in streamed if event["type"] == "trial"]
    # Followed live: the stream's first look, taken when the client connected right after the create, saw the first
    # trial before its end (a worker's claim, the model's build and four epochs).
    assert trial_events[0]["number"] == 0 and trial_events[0]["status"] in ("queued", "running"), trial_events[0]
    lifecycle = ("queued", "running")
    for trial in done["trials"]:
        states = [event["status"] for event in trial_events if event["number"] == trial["number"]]
        # Each trial's states in the order they happened, then as it ended (again once its objective is told). The
        # stream looks at SQL once a second, so a state shorter than that (a pruned trial's one epoch on a fast
        # machine) may not be seen.
        ended = next(index for index, state in enumerate(states) if state not in lifecycle)
        before, after = states[:ended], states[ended:]
        assert before == sorted(before, key=lifecycle.index) and set(after) == {trial["status"]}, states
        assert [e for e in trial_events if e["number"] == trial["number"]][-1] == trial
    # Every event has an id; resumed after one, the stream sends exactly the events after it, and after the last
    # (the client has the end) a 204; an id that is not one is a 422.
    assert all(event["id"] for event in streamed) and len({event["id"] for event in streamed}) == len(streamed)
    middle = len(streamed) // 2
    resumed = sweep_events(client, sweep["id"], last_event_id=streamed[middle]["id"])
    assert resumed == streamed[middle + 1:]
    assert client.get(f"/v1/sweeps/{sweep['id']}/events", params={"after": streamed[-1]["id"]}).status_code == 204
    invalid = client.get(f"/v1/sweeps/{sweep['id']}/events", headers={"Last-Event-ID": "not-an-id"})
    assert invalid.status_code == 422 and invalid.json()["title"] == "Invalid Event Id"
    pruned = [t for t in done["trials"] if t["status"] == "pruned"]
    assert [t["params"]["compile.optimizer.config.learning_rate"] for t in pruned] == [1e-7], done["trials"]
    [trial] = pruned
    job = client.get(f"/v1/jobs/{trial['job_id']}").json()
    assert job["status"] == "pruned"
    stopped = job["result"]["pruned"]["epoch"]
    # Stopped at the end of the epoch the pruner judged, before the fit's last epoch; those epochs are kept.
    assert 1 <= stopped < epochs and len(job["history"]["loss"]) == stopped
    assert trial["objective"] == pytest.approx(job["history"]["loss"][-1])
    artifacts = {a["name"] for a in client.get(f"/v1/jobs/{trial['job_id']}/artifacts").json()}
    assert "weights.h5" in artifacts
    assert done["best"]["params"]["compile.optimizer.config.learning_rate"] != 1e-7


@pytest.mark.parametrize(("algorithm", "rule"), [("tpe", "hyperband"), ("random", "successive_halving")])
def test_every_epoch_of_every_trial_is_reported_to_the_study_under_each_sampler_and_pruner(client, ids, algorithm,
                                                                                            rule, server_env):
    from app.core import studies
    from app.core.database import session_scope
    from app.core.tables import Sweep

    sweep = create(client, {
        "job": base_job(ids, epochs=2), "algorithm": algorithm, "seed": 5,
        "space": {"compile.optimizer.config.learning_rate": {"log_uniform": [1e-3, 1e-1]},
                  "fit.batch_size": {"int_uniform": [20, 100], "step": 20}},
        "objective": {"metric": "val_categorical_accuracy", "direction": "maximize"},
        "budget": {"max_trials": 2, "max_concurrent": 2}, "early_stopping": {"rule": rule, "min_epochs": 1}})
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["status"] == "completed" and sum(done["counts"].values()) == 2
    assert set(done["counts"]) <= {"succeeded", "pruned"}
    with session_scope() as session:
        row = session.get(Sweep, sweep["id"])
        plan, name = row.plan, row.study_name
    study = studies.load(plan, name, asking=False)
    assert type(study.pruner).__name__ == {"hyperband": "HyperbandPruner",
                                           "successive_halving": "SuccessiveHalvingPruner"}[rule]
    by_number = {trial.number: trial for trial in study.get_trials()}
    for trial in done["trials"]:
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        told = by_number[trial["number"]]
        # Optuna's record of the trial: each epoch the job ran, its values, and how it ended.
        assert told.intermediate_values == dict(enumerate(job["history"]["val_categorical_accuracy"]))
        assert told.state.name == {"succeeded": "COMPLETE", "pruned": "PRUNED"}[job["status"]]
        assert told.params == trial["params"] and trial["params"]["fit.batch_size"] in (20, 40, 60, 80, 100)


def test_the_reapers_step_leaves_a_sweep_to_the_step_holding_it_and_a_trial_just_ended_to_its_worker(client, ids):
    """The periodic step (every worker's reaper) never waits on a sweep another step holds, and leaves a trial that
    has just ended to the step its own worker runs after it; that step, held up meanwhile, then moves the sweep on."""
    from sqlalchemy import text

    from app.core.database import session_scope
    from app.core.repositories import sweeps as sweep_rows
    from app.core.sweep_steps import advance, due

    # The worker (one job at a time) trains another job until the sweep is held below: trial 0 waits in the queue
    # meanwhile, so it cannot end (and its worker's step cannot move the sweep on) before that, however fast.
    blocker = running_until_cancelled(client, ids["model"], ids["dataset"])
    sweep = create(client, {
        "job": base_job(ids, epochs=1), "algorithm": "random", "seed": 2,
        "space": {"compile.optimizer.config.learning_rate": {"uniform": [0.001, 0.01]}},
        "objective": {"metric": "val_loss"}, "budget": {"max_trials": 2, "max_concurrent": 1}})
    first = sweep["trials"][0]["job_id"]
    with session_scope() as session:
        # Trial 0 queued or running, one at most at once: nothing to do.
        assert not due(session, sweep_id=sweep["id"])
    with session_scope() as holder:
        # This transaction is the step that holds the sweep (until its end below)...
        assert sweep_rows.lock_sweep(holder, sweep_id=sweep["id"]) is not None
        with session_scope() as periodic:
            # ...so the periodic step does nothing (waiting for the lock would be an error here, not a hang).
            periodic.execute(text("SET LOCAL lock_timeout = '5s'"))
            assert advance(periodic, sweep_id=sweep["id"], wait=False) == []
        # Trial 0 runs and ends; its worker's step waits for this lock.
        assert client.post(f"/v1/jobs/{blocker}/cancel").status_code in (200, 202)
        assert wait_for_job(client, first)["status"] == "succeeded"
        with session_scope() as session:
            assert not due(session, sweep_id=sweep["id"], settle_s=600.0)  # just ended: its worker's step is on it
            assert due(session, sweep_id=sweep["id"], settle_s=0.0)  # long ago: the reaper's to tell
        assert client.get(f"/v1/sweeps/{sweep['id']}").json()["trials_created"] == 1
    # The lock released, the worker's step tells trial 0 and makes trial 1; the sweep completes.
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["status"] == "completed" and done["counts"] == {"succeeded": 2}


def test_cancel_stops_a_sweeps_queued_and_running_trials_and_makes_no_more(client, ids, receiver):
    # Trials that train until cancelled: the first is still running when the sweep is cancelled.
    sweep = create(client, {
        "job": base_job(ids, epochs=100_000), "algorithm": "random",
        "space": {"compile.optimizer.config.learning_rate": {"uniform": [0.001, 0.01]}},
        "objective": {"metric": "val_loss"}, "budget": {"max_trials": 6, "max_concurrent": 2}})
    wait_for_sweep(client, sweep["id"], until=lambda s: s["counts"].get("running") == 1)
    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["trials_created"] == 2 and done["counts"] == {"cancelled": 2}
    for trial in done["trials"]:
        assert client.get(f"/v1/jobs/{trial['job_id']}").json()["status"] == "cancelled"
        assert trial["note"] == "the trial's job ended cancelled"
    again = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409
    delivered = sweep_delivery(receiver, sweep["id"])
    assert delivered["status"] == "cancelled" and delivered["best"] is None


def test_no_trial_starts_after_the_time_limit_and_the_sweep_completes_with_those_it_ran(client, ids):
    # The worker (one job at a time) trains another job until the sweep's one second has passed: its first trial
    # waits in the queue meanwhile and ends after the limit, however fast the machine trains, so no second is made.
    blocker = running_until_cancelled(client, ids["model"], ids["dataset"])
    sweep = create(client, {
        "job": base_job(ids, epochs=3), "algorithm": "random",
        "space": {"compile.optimizer.config.learning_rate": {"uniform": [0.001, 0.01]}},
        "objective": {"metric": "val_loss"}, "budget": {"max_trials": 10, "max_concurrent": 1, "time_limit_s": 1}})
    time.sleep(1.5)
    assert client.get(f"/v1/sweeps/{sweep['id']}").json()["counts"] == {"queued": 1}
    assert client.post(f"/v1/jobs/{blocker}/cancel").status_code in (200, 202)
    done = wait_for_sweep(client, sweep["id"], until=ended)
    assert done["status"] == "completed" and done["trials_created"] == 1 and done["counts"] == {"succeeded": 1}


@pytest.mark.parametrize(("space", "field"), [
    ({"fit.batch_sise": {"choice": [32, 64]}}, "space.fit.batch_sise"),
    ({"compile.optimizer.config.learning_rat": {"uniform": [0.1, 0.2]}}, "space.compile.optimizer.config.learning_rat"),
    ({"model.layers[5].units": {"choice": [4, 8]}}, "space.model.layers[5].units"),
    ({"fit.x": {"choice": [1, 2]}}, "space.fit.x"),
    ({"optimizer.learning_rate": {"uniform": [0.1, 0.2]}}, "space.optimizer.learning_rate"),
])
def test_a_space_path_the_base_job_lacks_is_a_422_naming_it_and_stores_nothing(client, ids, space, field):
    before = client.get("/v1/sweeps").json()["items"]
    refused = client.post("/v1/sweeps", json={"job": base_job(ids), "space": space, "objective": {"metric": "loss"},
                                              "budget": {"max_trials": 2}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field
    assert next(iter(space)) in refused.json()["detail"]
    assert client.get("/v1/sweeps").json()["items"] == before


def test_a_sweep_whose_base_job_no_worker_seen_could_run_is_a_422_and_stores_nothing(client, ids):
    before = client.get("/v1/sweeps").json()["items"]
    # The session's worker runs tensorflow: a job for torch would wait forever, and so would its trials.
    refused = client.post("/v1/sweeps", json={
        "job": {**base_job(ids), "backend": "torch"}, "space": {"fit.batch_size": {"choice": [25, 50]}},
        "objective": {"metric": "loss"}, "budget": {"max_trials": 2}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "job.backend" and "Backend Unavailable" in refused.json()["detail"]
    assert client.get("/v1/sweeps").json()["items"] == before


def test_a_space_whose_values_a_job_would_refuse_is_a_422_naming_the_point(client, ids):
    refused = client.post("/v1/sweeps", json={
        "job": base_job(ids), "space": {"fit.batch_size": {"int_uniform": [0, 64]}},
        "objective": {"metric": "loss"}, "budget": {"max_trials": 2}})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["title"] == "Invalid Sweep Point" and problem["point"] == {"fit.batch_size": 0}
    assert "batch_size" in problem["detail"]
