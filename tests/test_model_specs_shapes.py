"""At job submit, arrays are checked against the model's inputs, outputs and loss: a mismatch is a 422
before anything is queued, with the array, the model's shape and what to do."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from app.jobs.shapes import check_data_shapes, fits, loss_name
from tests.seed import SEED_COMPILE, SEED_MODEL, fit_request, npz_bytes, ref, run, seed_arrays, upload, wait_for_job
from tests.test_bad_input import assert_problem, counts
from tests.test_model_specs import FUNCTIONAL


def test_fits_follows_keras_rules():
    assert fits([100, 72], [None, 72]) and not fits([100, 5], [None, 72])
    assert fits([100, 28, 28], [None, None, 28])  # None takes any size
    assert fits([100], [None, 1]) and fits([100, 1], [None])  # Keras adds or drops a trailing 1
    assert not fits([100, 10], [None, 1])
    assert fits([100, 10], [None, 1], broadcast=True)


@pytest.mark.parametrize(
    ("loss", "name"),
    [
        ("categorical_crossentropy", "categorical_crossentropy"),
        ("mse", "mean_squared_error"),
        ({"class_name": "SparseCategoricalCrossentropy", "config": {}}, "sparse_categorical_crossentropy"),
        ({"class_name": "KLDivergence"}, "kl_divergence"),
        ({"score": "mae"}, None),
        (None, None),
    ],
)
def test_loss_names(loss, name):
    assert loss_name(loss, "label", 0) == name


def test_unbuilt_models_are_left_to_keras():
    check_data_shapes(
        {"built": False, "inputs": None, "outputs": None},
        {"x": {"$array": {"shape": [3, 5]}}},
        {"loss": "mse"},
        field="fit",
    )


@pytest.fixture(scope="module")
def ids(api_url):
    import httpx

    rng = np.random.default_rng(3)
    arrays = {
        **seed_arrays(),
        "narrow_x": np.zeros((1000, 5), "float32"),
        "labels": rng.integers(0, 10, 1000).astype("int32"),
        "val_labels": rng.integers(0, 10, 200),
        "left": rng.random((64, 72), dtype="float32"),
        "right": rng.random((64, 72), dtype="float32"),
        "onehot": np.eye(10, dtype="float32")[rng.integers(0, 10, 64)],
        "score": rng.random((64, 1)),
    }
    with httpx.Client(base_url=api_url, timeout=120) as http:
        dataset = upload(http, "shapes.npz", npz_bytes(**arrays)).json()
        seed = http.post("/v1/models", json=SEED_MODEL).json()
        two = http.post("/v1/models", json=FUNCTIONAL).json()
    return {"dataset": dataset["id"], "seed": seed["id"], "two": two["id"]}


def test_inputs_that_do_not_fit_are_422_before_queueing(client, ids):
    before = counts()
    request = fit_request(ids["seed"], ids["dataset"], epochs=1)
    request["fit"]["x"] = ref(ids["dataset"], "narrow_x")
    body = assert_problem(
        client.post("/v1/jobs", json=request), 422, "fit.x", "(1000, 5)", "(None, 72)", "'input_layer'"
    )
    assert body["title"] == "Mismatched Input" and body["input_shape"] == [None, 72]
    request = fit_request(ids["seed"], ids["dataset"], epochs=1)
    request["fit"]["validation_data"]["x"] = ref(ids["dataset"], "narrow_x")
    request["fit"]["validation_data"]["y"] = ref(ids["dataset"], "train_y")
    assert_problem(client.post("/v1/jobs", json=request), 422, "fit.validation_data.x")
    predict = {"kind": "predict", "model_id": ids["seed"], "predict": {"x": ref(ids["dataset"], "narrow_x")}}
    assert_problem(client.post("/v1/jobs", json=predict), 422, "predict.x", "(None, 72)")
    assert counts() == before


def test_targets_are_checked_with_the_loss(client, ids):
    before = counts()
    request = fit_request(ids["seed"], ids["dataset"], epochs=1)
    request["fit"].update(y=ref(ids["dataset"], "labels"), validation_data=None)
    body = assert_problem(
        client.post("/v1/jobs", json=request), 422, "fit.y", "(1000,)", "categorical_crossentropy", "to_categorical"
    )
    assert body["title"] == "Mismatched Targets"
    sparse = copy.deepcopy(request)
    sparse["compile"]["loss"] = "sparse_categorical_crossentropy"
    sparse["compile"]["metrics"] = ["sparse_categorical_accuracy"]
    wrong_sparse = copy.deepcopy(sparse)
    wrong_sparse["fit"]["y"] = ref(ids["dataset"], "train_y")  # one-hot targets for a sparse loss
    assert_problem(client.post("/v1/jobs", json=wrong_sparse), 422, "sparse_categorical_crossentropy", "one-hot")
    assert counts() == before
    accepted = client.post("/v1/jobs", json=sparse)
    assert accepted.status_code == 201, accepted.text
    assert wait_for_job(client, accepted.json()["id"])["status"] == "succeeded"


def test_named_inputs_and_outputs_of_a_functional_model(client, ids):
    data = ids["dataset"]
    request = {
        "kind": "fit",
        "model_id": ids["two"],
        "seed": 1,
        "compile": {**SEED_COMPILE, "loss": {"label": "categorical_crossentropy", "score": "mse"}, "metrics": []},
        "fit": {
            "x": {"left": ref(data, "left"), "right": ref(data, "right")},
            "y": {"label": ref(data, "onehot"), "score": ref(data, "score")},
            "epochs": 1,
            "batch_size": 16,
        },
    }
    before = counts()
    typo = copy.deepcopy(request)
    typo["fit"]["x"] = {"left": ref(data, "left"), "rihgt": ref(data, "right")}
    assert_problem(client.post("/v1/jobs", json=typo), 422, "'rihgt'", "right")
    one = copy.deepcopy(request)
    one["fit"]["x"] = ref(data, "left")
    assert_problem(client.post("/v1/jobs", json=one), 422, "2 inputs", "['left', 'right']")
    swapped = copy.deepcopy(request)
    swapped["fit"]["y"] = {"label": ref(data, "score"), "score": ref(data, "onehot")}
    assert_problem(client.post("/v1/jobs", json=swapped), 422, "fit.y.label", "'label'")
    assert counts() == before
    run(client, request)
