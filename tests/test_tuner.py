"""KerasTuner on kerasd (`kerasd.tuner`), against the real API and worker: KerasTuner's getting-started example runs
with only the import and the client changed, its trials jobs of one `space_from: client` sweep whose values Optuna
chose; the best model comes back as a local Keras model predicting as its trial's job predicts on the server; a
search interrupted and called again (or a new tuner of the same project) goes on with the same sweep. The client
sweep's API refuses what it must with a clear error, and another tenant's client sweep is not found."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import keras
import numpy as np
import pytest
from keras import layers
from keras_tuner.errors import FatalError
from sklearn.datasets import load_digits

import kerasd
import kerasd.tuner
from tests.tenancy import keyed_client, make_tenant
from tests.test_sweeps import base_job, ids  # noqa: F401  (ids: the module's model and dataset fixture)


def build_model(hp):
    # KerasTuner's getting-started build_model, as its docs write it.
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(layers.Dense(units=hp.Int("units", min_value=32, max_value=512, step=32),
                           activation=hp.Choice("activation", ["relu", "tanh"])))
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def digits() -> tuple[np.ndarray, ...]:
    found = load_digits()
    x = (found.images / 16.0).astype("float32")
    y = keras.utils.to_categorical(found.target, 10).astype("float32")
    return x[:600], y[:600], x[1500:1700], y[1500:1700]


class StoppedAfterOneTrial(kerasd.tuner.RandomSearch):
    """A search stopped by its user (Ctrl-C) after its first trial ends: KerasTuner's on_trial_end hook."""

    interrupt = True

    def on_trial_end(self, trial):
        if self.interrupt:
            raise KeyboardInterrupt


def test_kerastuner_getting_started_runs_on_kerasd_and_a_second_search_goes_on(api_url: str, tmp_path: Path):
    x_train, y_train, x_val, y_val = digits()
    client = kerasd.Client(api_url, verbose=0)
    tuner = StoppedAfterOneTrial(hypermodel=build_model, objective="val_accuracy", max_trials=2,
                                 executions_per_trial=1, overwrite=True, directory=tmp_path,
                                 project_name="helloworld", client=client, max_concurrent_trials=1, seed=7)
    tuner.search_space_summary()
    assert [hp.name for hp in tuner.oracle.get_space().space] == ["units", "activation", "dropout", "lr"]
    with pytest.raises(KeyboardInterrupt):
        tuner.search(x_train, y_train, epochs=2, validation_data=(x_val, y_val))
    sweep_id = tuner.sweep_id
    assert client.sweeps.get(sweep_id)["trials_created"] == 1

    tuner.interrupt = False
    tuner.search(x_train, y_train, epochs=2, validation_data=(x_val, y_val))
    sweep = client.sweeps.wait(sweep_id, timeout=300)
    assert tuner.sweep_id == sweep_id and sweep["status"] == "completed", sweep
    assert [t["number"] for t in sweep["trials"]] == [0, 1] and sweep["counts"] == {"succeeded": 2}
    for trial in sweep["trials"]:
        params = trial["params"]
        assert params["units"] in range(32, 513, 32) and params["activation"] in ("relu", "tanh")
        assert isinstance(params["dropout"], bool) and 1e-4 <= params["lr"] <= 1e-2
        job = client.jobs.get(trial["job_id"])
        assert job["sweep_id"] == sweep_id and job["params"]["units"] == params["units"]
        assert len(job["history"]["val_accuracy"]) == 2
        assert trial["objective"] == max(job["history"]["val_accuracy"])
    assert len({t["params"]["lr"] for t in sweep["trials"]}) == 2  # Optuna drew each trial's values

    best_hp = tuner.get_best_hyperparameters(1)[0]
    assert best_hp.values == {name: sweep["best"]["params"][name] for name in best_hp.values}
    tuner.results_summary()
    best_model = tuner.get_best_models(num_models=1)[0]
    assert isinstance(best_model, keras.Model) and best_model.layers[1].units == best_hp.values["units"]
    # The best trial's own model predicts on the server (a predict job from its trained weights) as it does here.
    best_job = client.jobs.get(sweep["best"]["job_id"])
    val_x = client.datasets.upload(x_val, filename="val_x.npy", verbose=0)
    predict = client.jobs.create({"kind": "predict", "model_id": best_job["model_id"],
                                  "initial_weights": {"job_id": best_job["id"]},
                                  "predict": {"x": {"dataset_id": val_x["id"]}}})
    assert client.jobs.wait(predict["id"], timeout=300)["status"] == "succeeded"
    served = np.load(io.BytesIO(client.jobs.artifact(predict["id"], "predictions.npy", verbose=0)))
    np.testing.assert_allclose(best_model.predict(x_val, verbose=0), served, rtol=1e-4, atol=1e-5)

    # A new tuner of the same project (a new process, as KerasTuner reloads a project) finds the same sweep.
    again = kerasd.tuner.RandomSearch(build_model, objective="val_accuracy", max_trials=2, directory=tmp_path,
                                      project_name="helloworld", client=client)
    assert again.sweep_id == sweep_id
    assert again.get_best_hyperparameters(1)[0].values == best_hp.values


def test_kerastuner_hyperparameters_become_the_sweeps_dimensions():
    hp = kerasd.tuner.HyperParameters()
    hp.Int("units", 32, 500, step=32)
    hp.Float("lr", 1e-4, 1e-2, sampling="log")
    hp.Float("rate", 0.0, 0.5, step=0.1)
    hp.Choice("activation", ["relu", "tanh"])
    hp.Boolean("dropout")
    hp.Fixed("layers", 3)
    with hp.conditional_scope("activation", ["relu"]):
        hp.Int("extra", 1, 3)
    found = {p.name: kerasd.tuner.dimension(p) for p in hp.space}
    assert found == {"units": {"int_uniform": [32, 480], "step": 32}, "lr": {"log_uniform": [1e-4, 1e-2]},
                     "rate": {"uniform": [0.0, 0.5], "step": 0.1}, "activation": {"choice": ["relu", "tanh"]},
                     "dropout": {"choice": [False, True]}, "layers": None, "extra": {"int_uniform": [1, 3]}}
    # The sweep's values, with the conditional child inactive when its parent's value does not call for it.
    chosen = kerasd.tuner.values_for(hp, {"units": 64, "lr": 1e-3, "rate": 0.2, "activation": "tanh",
                                          "dropout": True, "extra": 2})
    assert chosen.values == {"units": 64, "lr": 1e-3, "rate": 0.2, "activation": "tanh", "dropout": True,
                             "layers": 3}


def test_bayesian_optimization_and_hyperband_ask_for_tpe_and_the_hyperband_pruner(tmp_path: Path):
    bayesian = kerasd.tuner.BayesianOptimization(build_model, objective="val_accuracy", max_trials=5,
                                                 num_initial_points=2, client=None, directory=tmp_path)
    assert bayesian.algorithm == "tpe" and bayesian.objective.direction == "max" and bayesian.max_trials == 5
    hyperband = kerasd.tuner.Hyperband(build_model, objective="val_loss", max_epochs=9, factor=3, client=None,
                                       directory=tmp_path)
    # KerasTuner's brackets for 9 epochs and factor 3: 9 + 5 + 3 models.
    assert hyperband.max_trials == 17 and hyperband._epochs(2) == 9
    assert hyperband._sweep_options() == {"early_stopping": {"rule": "hyperband", "min_epochs": 1,
                                                             "reduction_factor": 3}, "max_epochs": 9}


def client_sweep(http: httpx.Client, **extra) -> dict:
    created = http.post("/v1/sweeps", json={"space_from": "client", "objective": {"metric": "val_loss"},
                                            "budget": {"max_trials": 1}, **extra})
    assert created.status_code == 201, created.text
    return created.json()


def test_a_client_sweep_refuses_what_it_must_and_stores_nothing_wrong(api_url: str, ids):  # noqa: F811
    with httpx.Client(base_url=api_url, timeout=120) as http:
        refused = http.post("/v1/sweeps", json={"space_from": "client", "objective": {"metric": "val_loss"},
                                                "budget": {"max_trials": 2}, "job": base_job(ids)})
        assert refused.status_code == 422 and "takes no base job" in refused.text
        grid = http.post("/v1/sweeps", json={"space_from": "client", "objective": {"metric": "val_loss"},
                                             "algorithm": "grid", "budget": {"max_trials": 2}})
        assert grid.status_code == 422 and "grid needs the whole space" in grid.text

        sweep = client_sweep(http, name="asks")
        assert sweep["trials"] == [] and sweep["trials_created"] == 0
        space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "units": {"int_uniform": [4, 16], "step": 4}}
        asked = http.post(f"/v1/sweeps/{sweep['id']}/trials", json={"space": space})
        assert asked.status_code == 201, asked.text
        number, params = asked.json()["number"], asked.json()["params"]
        assert number == 0 and 1e-3 <= params["lr"] <= 1e-1 and params["units"] in (4, 8, 12, 16)
        spent = http.post(f"/v1/sweeps/{sweep['id']}/trials", json={"space": space})
        assert spent.status_code == 409 and spent.json()["title"] == "Sweep Budget Spent"

        unknown = http.post(f"/v1/sweeps/{sweep['id']}/trials/5/job", json=base_job(ids))
        assert unknown.status_code == 404
        predict = http.post(f"/v1/sweeps/{sweep['id']}/trials/0/job",
                            json={"kind": "predict", "model_id": ids["model"],
                                  "predict": {"x": base_job(ids)["fit"]["x"]}})
        assert predict.status_code == 422 and "fit jobs" in predict.text
        job = http.post(f"/v1/sweeps/{sweep['id']}/trials/0/job", json=base_job(ids, epochs=1))
        assert job.status_code == 201, job.text
        assert job.json()["sweep_id"] == sweep["id"] and job.json()["params"]["units"] == params["units"]
        twice = http.post(f"/v1/sweeps/{sweep['id']}/trials/0/job", json=base_job(ids, epochs=1))
        assert twice.status_code == 409 and twice.json()["title"] == "Trial Has A Job"
        # A trial with its job ends with its job: it cannot be reported failed.
        failed = http.post(f"/v1/sweeps/{sweep['id']}/trials/0/fail", json={"reason": "ValueError: late"})
        assert failed.status_code == 409 and failed.json()["title"] == "Trial Has A Job"

        made_from_job = http.post("/v1/sweeps", json={
            "job": base_job(ids, epochs=1), "space": {"fit.batch_size": {"choice": [25, 50]}},
            "objective": {"metric": "val_loss"}, "budget": {"max_trials": 1}})
        assert made_from_job.status_code == 201, made_from_job.text
        not_client = http.post(f"/v1/sweeps/{made_from_job.json()['id']}/trials", json={"space": space})
        assert not_client.status_code == 409 and not_client.json()["title"] == "Not A Client Sweep"
        missing = http.post("/v1/sweeps/0123456789abcdef0123456789abcdef/trials", json={"space": space})
        assert missing.status_code == 404

        deadline_sweep = http.get(f"/v1/sweeps/{sweep['id']}").json()
        for _ in range(600):
            if deadline_sweep["status"] == "completed":
                break
            time.sleep(0.5)
            deadline_sweep = http.get(f"/v1/sweeps/{sweep['id']}").json()
        # Its one trial ended, its budget spent: the sweep ends completed with the trial's objective.
        assert deadline_sweep["status"] == "completed", deadline_sweep
        assert deadline_sweep["best"]["job_id"] == job.json()["id"]


def test_another_tenants_client_sweep_is_not_found_for_asks_or_trial_jobs(keyed_api):
    _owner_id, owner_key = make_tenant("tuner-owner")
    _other_id, other_key = make_tenant("tuner-other")
    space = {"units": {"int_uniform": [4, 16]}}
    with keyed_client(keyed_api[0], owner_key) as owner, keyed_client(keyed_api[0], other_key) as other:
        sweep = client_sweep(owner, budget={"max_trials": 2})
        assert other.post(f"/v1/sweeps/{sweep['id']}/trials", json={"space": space}).status_code == 404
        asked = owner.post(f"/v1/sweeps/{sweep['id']}/trials", json={"space": space})
        assert asked.status_code == 201, asked.text
        # The sweep is looked up as the caller's before anything of the job is: ids of nothing do here.
        job = base_job({"model": "0" * 32, "dataset": "1" * 32}, epochs=1)
        refused = other.post(f"/v1/sweeps/{sweep['id']}/trials/0/job", json=job)
        assert refused.status_code == 404, refused.text
        assert other.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["items"] == []
        # Nothing was counted for the other tenant's tries: one trial asked.
        assert owner.get(f"/v1/sweeps/{sweep['id']}").json()["trials_created"] == 1


def test_a_client_trial_that_gets_no_job_is_reported_failed_with_its_reason_and_the_sweep_ends_without_waiting(
        api_url: str, ids, server_env):  # noqa: F811
    from app.core import studies
    from app.core.database import session_scope
    from app.core.tables import Sweep

    space = {"units": {"int_uniform": [4, 16], "step": 4}}
    with httpx.Client(base_url=api_url, timeout=120) as http:
        sweep = client_sweep(http, name="unbuilt", budget={"max_trials": 2})
        trials = f"/v1/sweeps/{sweep['id']}/trials"
        asked = http.post(trials, json={"space": space}).json()
        # Refused as POST /v1/jobs refuses a job no worker seen could run (the test worker runs tensorflow, with no
        # GPUs); the trial still waits for its job.
        gpus = http.post(f"{trials}/0/job", json={**base_job(ids, epochs=1), "resources": {"gpus": 16}})
        assert gpus.status_code == 422 and gpus.json()["title"] == "Unschedulable Job", gpus.text
        torch = http.post(f"{trials}/0/job", json={**base_job(ids, epochs=1), "backend": "torch"})
        assert torch.status_code == 422 and torch.json()["title"] == "Backend Unavailable", torch.text
        assert http.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["items"] == []

        assert http.post(f"{trials}/7/fail", json={"reason": "never asked"}).status_code == 404
        failed = http.post(f"{trials}/0/fail", json={"reason": "ValueError: no model with these units"})
        assert failed.status_code == 200, failed.text
        assert failed.json()["status"] == "running" and failed.json()["trials"] == []
        assert [(f["number"], f["params"], f["reason"]) for f in failed.json()["failed_asks"]] == [
            (0, asked["params"], "ValueError: no model with these units")]
        late = http.post(f"{trials}/0/job", json=base_job(ids, epochs=1))
        assert late.status_code == 409 and "no model with these units" in late.json()["detail"], late.text
        again = http.post(f"{trials}/0/fail", json={"reason": "again"})
        assert again.status_code == 409 and again.json()["title"] == "Trial Expired"

        # The last trial of its budget reported failed too: nothing is left to wait for, so the sweep ends now.
        assert http.post(trials, json={"space": space}).json()["number"] == 1
        ended = http.post(f"{trials}/1/fail", json={"reason": "RuntimeError: out of memory"}).json()
        assert ended["status"] == "completed" and [f["number"] for f in ended["failed_asks"]] == [0, 1]
    with session_scope() as session:
        study_name = session.get(Sweep, sweep["id"]).study_name
    # Optuna's study knows both failed: its sampler counts their values failed.
    assert [studies.trial_of(study_name, n).state.name for n in (0, 1)] == ["FAIL", "FAIL"]


def test_a_trial_whose_build_model_raises_fails_as_in_kerastuner_and_is_reported_to_the_sweep(api_url: str,
                                                                                              tmp_path: Path):
    client = kerasd.Client(api_url, verbose=0)
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 8), dtype="float32"), np.eye(2, dtype="float32")[rng.integers(0, 2, 20)]
    calls = []

    def unbuildable(hp):
        units = hp.Int("units", 4, 16, step=4)
        calls.append(units)
        if len(calls) > 1:  # the tuner builds once when it is made, to learn the space; every trial's build raises
            raise ValueError(f"no model with {units} units")
        return keras.Sequential([layers.Dense(units), layers.Dense(2, activation="softmax")])

    tuner = kerasd.tuner.RandomSearch(unbuildable, objective="val_loss", max_trials=5, max_retries_per_trial=1,
                                      max_consecutive_failed_trials=2, directory=tmp_path, project_name="unbuildable",
                                      client=client, seed=3)
    # KerasTuner's own end of a search whose trials keep failing; each trial was built twice (one retry).
    with pytest.raises(RuntimeError, match="Number of consecutive failures exceeded the limit of 2"):
        tuner.search(x, y, epochs=1, validation_data=(x, y))
    assert len(calls) == 5 and calls[1] == calls[2] and calls[3] == calls[4]
    assert [(t.number, t.status, t.job_id) for t in tuner.trials.values()] == [(0, "FAILED", None),
                                                                               (1, "FAILED", None)]
    assert "Traceback" in tuner.trials[1].message and "no model with" in tuner.trials[1].message
    sweep = client.sweeps.get(tuner.sweep_id)
    assert sweep["trials"] == [] and sweep["trials_created"] == 2
    assert [(f["params"]["units"], f["reason"]) for f in sweep["failed_asks"]] == [
        (units, f"ValueError: no model with {units} units") for units in (calls[2], calls[4])]

    # KerasTuner's FatalError ends the search at once; the sweep is told about its trial all the same.
    fatal_calls = []

    def fatal(hp):
        hp.Int("units", 4, 16, step=4)
        fatal_calls.append(1)
        if len(fatal_calls) > 1:
            raise FatalError("the data cannot fit any model")
        return keras.Sequential([layers.Dense(4)])

    stopped = kerasd.tuner.RandomSearch(fatal, objective="val_loss", max_trials=5, max_retries_per_trial=3,
                                        directory=tmp_path, project_name="fatal", client=client)
    with pytest.raises(FatalError, match="cannot fit any model"):
        stopped.search(x, y, epochs=1, validation_data=(x, y))
    assert len(fatal_calls) == 2
    assert [f["reason"] for f in client.sweeps.get(stopped.sweep_id)["failed_asks"]] == [
        "FatalError: the data cannot fit any model"]
