"""Models whose outputs are a dict, as Keras takes them: a compiled model's JSON, targets by output name, metrics per
output (a dict or a list of lists), through the real API and worker and against plain Keras's history."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from tests.seed import npz_bytes, ref, run, upload, wait_for_job
from tests.test_bad_input import assert_problem, counts

PER_OUTPUT_METRICS = {"out_a": ["accuracy"], "out_b": ["mae"]}
LOSSES = {"out_a": "categorical_crossentropy", "out_b": "mse"}


def dict_output_model(*, compiled: bool):
    import keras

    keras.utils.set_random_seed(3)
    features = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(features)
    model = keras.Model(
        features,
        {
            "out_a": keras.layers.Dense(3, activation="softmax", name="out_a")(hidden),
            "out_b": keras.layers.Dense(1, name="out_b")(hidden),
        },
    )
    if compiled:
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=LOSSES, metrics=PER_OUTPUT_METRICS)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    return {
        "x": rng.random((64, 6), dtype="float32"),
        "a": np.eye(3, dtype="float32")[rng.integers(0, 3, 64)],
        "b": rng.random((64, 1), dtype="float32"),
    }


@pytest.fixture(scope="module")
def ids(api_url, data):
    import httpx

    with httpx.Client(base_url=api_url, timeout=120) as http:
        dataset = upload(http, "dict.npz", npz_bytes(**data)).json()
        # The JSON of a model compiled with Adam carries its compile_config; the model check once failed on it
        # (Keras compiled it inside the parameter count's StatelessScope, where Adam cannot make its variables).
        architecture = json.loads(dict_output_model(compiled=True).to_json())
        assert "compile_config" in architecture
        created = http.post("/v1/models", json=architecture)
        assert created.status_code == 201, created.text
    return {"dataset": dataset["id"], "model": created.json()["id"], "summary": created.json()["summary"]}


def request(ids, **compile_args) -> dict:
    d = ids["dataset"]
    return {
        "kind": "fit",
        "model_id": ids["model"],
        "seed": 1,
        "compile": {"optimizer": "adam", "loss": LOSSES, **compile_args},
        "fit": {"x": ref(d, "x"), "y": {"out_a": ref(d, "a"), "out_b": ref(d, "b")}, "epochs": 2, "batch_size": 16},
    }


def test_a_compiled_models_json_is_accepted_with_its_outputs(ids):
    assert [o["name"] for o in ids["summary"]["outputs"]] == ["out_a", "out_b"]
    assert ids["summary"]["total_params"] == dict_output_model(compiled=False).count_params()


def test_targets_keyed_by_an_unknown_or_missing_output_are_422(client, ids):
    before = counts()
    unknown = request(ids)
    unknown["fit"]["y"]["out_c"] = unknown["fit"]["y"].pop("out_b")
    body = assert_problem(
        client.post("/v1/jobs", json=unknown), 422, "fit.y.out_c", "no output named 'out_c'", "['out_a', 'out_b']"
    )
    assert body["title"] == "Unknown Output" and body["field"] == "fit.y.out_c"
    missing = request(ids)
    del missing["fit"]["y"]["out_b"]
    body = assert_problem(client.post("/v1/jobs", json=missing), 422, "fit.y", "'out_b'")
    assert body["title"] == "Missing Output"
    assert counts() == before


@pytest.mark.parametrize("metrics", [PER_OUTPUT_METRICS, [["accuracy"], ["mae"]]], ids=["dict", "list-of-lists"])
def test_per_output_metrics_train_as_keras_does(client, ids, data, metrics):
    created = client.post("/v1/jobs", json=request(ids, metrics=copy.deepcopy(metrics)))
    assert created.status_code == 201, created.text
    job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    model = dict_output_model(compiled=False)
    model.compile(optimizer="adam", loss=LOSSES, metrics=metrics)
    local = model.fit(data["x"], {"out_a": data["a"], "out_b": data["b"]}, epochs=2, batch_size=16, verbose=0)
    assert set(job["history"]) == set(local.history)
    assert {"out_a_accuracy", "out_b_mae"} <= set(job["history"])


def test_outputs_whose_keys_are_not_their_layers_names_go_by_their_keys(client, ids, data):
    """Keras matches a dict-output model's targets, losses and metrics by the dict's keys and refuses the output
    layers' names there; so does the API, at submit."""
    import keras

    features = keras.Input((6,), name="features")
    model = keras.Model(
        features,
        {
            "label": keras.layers.Dense(3, activation="softmax", name="dense_a")(features),
            "score": keras.layers.Dense(1, name="dense_b")(features),
        },
    )
    created = client.post("/v1/models", json=json.loads(model.to_json()))
    assert created.status_code == 201, created.text
    outputs = created.json()["summary"]["outputs"]
    assert {(o["name"], o["key"]) for o in outputs} == {("dense_a", "label"), ("dense_b", "score")}
    d = ids["dataset"]
    job = {
        "kind": "fit",
        "model_id": created.json()["id"],
        "seed": 1,
        "compile": {
            "optimizer": "adam",
            "loss": {"label": "categorical_crossentropy", "score": "mse"},
            "metrics": {"label": ["accuracy"]},
        },
        "fit": {"x": ref(d, "x"), "y": {"label": ref(d, "a"), "score": ref(d, "b")}, "epochs": 1},
    }
    before = counts()
    by_layer_names = copy.deepcopy(job)
    by_layer_names["fit"]["y"] = {"dense_a": ref(d, "a"), "dense_b": ref(d, "b")}
    assert_problem(client.post("/v1/jobs", json=by_layer_names), 422, "no output named 'dense_a'", "['label', 'score']")
    misspelt_loss = copy.deepcopy(job)
    misspelt_loss["compile"]["loss"] = {"label": "categorical_crossentropy", "scroe": "mse"}
    body = assert_problem(
        client.post("/v1/jobs", json=misspelt_loss), 422, "compile.loss.scroe", "no output named 'scroe'", "score"
    )
    assert body["title"] == "Unknown Output"
    misspelt_metrics = copy.deepcopy(job)
    misspelt_metrics["compile"]["metrics"] = {"lable": ["accuracy"]}
    assert_problem(client.post("/v1/jobs", json=misspelt_metrics), 422, "compile.metrics.lable", "label")
    assert counts() == before
    done = run(client, job)
    assert {"label_accuracy", "label_loss", "score_loss"} <= set(done["history"])
