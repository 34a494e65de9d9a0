"""A misspelt name anywhere in a model or a job is a 422 that names the closest known name, at the user's own field."""

from __future__ import annotations

import copy

import pytest

from tests.seed import SEED_MODEL, fit_request, seed_arrays, upload_seed
from tests.test_bad_input import assert_problem, counts


@pytest.fixture(scope="module")
def seed_ids(api_url):
    return upload_seed(api_url, seed_arrays())


def submitted(client, seed_ids, change) -> dict:
    request = fit_request(seed_ids["model"], seed_ids["dataset"], epochs=1)
    change(request)
    return request


@pytest.mark.parametrize(("change", "field", "needles"), [
    (lambda r: r["compile"].update(optimizer="adamm"), "compile.optimizer",
     ["unknown optimizer 'adamm'", "did you mean 'adam'"]),
    (lambda r: r["compile"].update(loss="categorical_crosentropy"), "compile.loss",
     ["unknown loss 'categorical_crosentropy'", "did you mean 'categorical_crossentropy'"]),
    (lambda r: r["compile"].update(metrics=["categorical_accuracy", "accuracyy"]), "compile.metrics[1]",
     ["unknown metric 'accuracyy'", "did you mean 'accuracy'"]),
    (lambda r: r["compile"].update(optimizer={"class_name": "Adam", "config": {"learning_rat": 0.01}}),
     "compile.optimizer", ["'learning_rat' is not an argument of Adam", "did you mean 'learning_rate'"]),
    (lambda r: r["compile"].update(loss={"class_name": "CategoricalCrossentropy", "config": {"from_logit": True}}),
     "compile.loss", ["'from_logit' is not an argument of CategoricalCrossentropy", "did you mean 'from_logits'"]),
], ids=["optimizer", "loss", "metric", "optimizer-argument", "loss-argument"])
def test_misspelt_compile_names_suggest_the_closest_known_name(client, seed_ids, change, field, needles):
    before = counts()
    body = assert_problem(client.post("/v1/jobs", json=submitted(client, seed_ids, change)), 422, field, *needles)
    assert body["title"] == "Unknown Name" and body["field"] == field
    assert counts() == before


def test_an_unknown_request_field_suggests_the_field_meant(client, seed_ids):
    def epoch(request):
        request["fit"]["epoch"] = request["fit"].pop("epochs")

    body = assert_problem(client.post("/v1/jobs", json=submitted(client, seed_ids, epoch)), 422,
                          "fit.epoch", "did you mean 'epochs'?")
    assert "Extra inputs are not permitted" not in body["detail"]
    assert body["errors"] == [{"field": "fit.epoch", "in": "body",
                               "message": "'epoch' is not a field here: did you mean 'epochs'?"}]
    body = assert_problem(client.post("/v1/jobs", json=submitted(
        client, seed_ids, lambda r: r["compile"].update(optimiser=r["compile"].pop("optimizer")))), 422,
        "compile.optimiser", "did you mean 'optimizer'?")
    # A callback's class is one of a fixed set: the closest of them.
    assert_problem(client.post("/v1/jobs", json=submitted(
        client, seed_ids, lambda r: r.update(callbacks=[{"class_name": "EarlyStoping"}]))), 422,
        "callbacks.0.class_name", "did you mean 'EarlyStopping'?")
    # Nothing close: the fields there are listed.
    assert_problem(client.post("/v1/jobs", json=submitted(
        client, seed_ids, lambda r: r["fit"].update(zzzz=1))), 422, "'zzzz' is not a field here; the fields are",
        "batch_size", "epochs")
    # Inside a union (an array reference or a pipeline), through the member pydantic names in the location.
    def pipeline(request):
        request["fit"]["x"] = {"pipeline": {"x": request["fit"]["x"], "y": request["fit"].pop("y"),
                                            "ops": [{"op": "batch", "batchsize": 32}]}}

    body = assert_problem(client.post("/v1/jobs", json=submitted(client, seed_ids, pipeline)), 422)
    assert {"field": "fit.x.Pipeline.pipeline.ops.0.batchsize", "in": "body",
            "message": "'batchsize' is not a field here: did you mean 'batch_size'?"} in body["errors"], body
    # A spec form's own fields.
    spec = {**SEED_MODEL, "input_shap": [72]}
    del spec["input_shape"]
    assert_problem(client.post("/v1/models", json=spec), 422, "input_shap", "did you mean 'input_shape'")


def test_a_misspelt_layer_argument_suggests_the_argument(client):
    before = counts()
    spec = copy.deepcopy(SEED_MODEL)
    spec["layers"][1] = {"class_name": "Dense", "units": 32, "activaton": "relu"}
    body = assert_problem(client.post("/v1/models", json=spec), 422, "'activaton' is not an argument of Dense",
                          "did you mean 'activation'?")
    # Keras names the class only; the spec has three Dense layers, and the field says which one.
    assert body["field"] == "layers[1].activaton" and "layers[1].activaton: Dense:" in body["detail"]
    assert counts() == before


def test_a_bad_layer_is_reported_at_the_users_own_index(client):
    before = counts()
    spec = copy.deepcopy(SEED_MODEL)  # it has an input_shape: Keras's config puts an InputLayer first
    spec["layers"][0]["class_name"] = "Dnse"
    body = assert_problem(client.post("/v1/models", json=spec), 422, "layers[0].class_name", "Dense")
    assert body["field"] == "layers[0].class_name" and "config.layers" not in body["detail"]
    spec = copy.deepcopy(SEED_MODEL)
    spec["layers"][2]["kernel_initializer"] = {"class_name": "GlorotUnifrm"}
    body = assert_problem(client.post("/v1/models", json=spec), 422, "GlorotUniform")
    assert body["field"] == "layers[2].kernel_initializer.class_name"
    functional = {"type": "functional", "inputs": [{"name": "a", "shape": [4]}], "outputs": "d",
                  "layers": [{"name": "d", "class_name": "Dens", "units": 3, "inputs": "a"}]}
    body = assert_problem(client.post("/v1/models", json=functional), 422, "Dense")
    assert body["field"] == "layers[0].class_name"
    assert counts() == before
