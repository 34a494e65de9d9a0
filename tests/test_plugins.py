"""Plugins (DESIGN.md §4): the tutorial's MyLayer (§4.3) and MyModel (§4.2) as server-side code that clients
name; listed by GET /v1/plugins, built by the spec checker, trained by the worker, round-tripped as JSON."""

from __future__ import annotations

import copy

import pytest

from tests.seed import SEED_COMPILE, fit_request, npz_bytes, seed_arrays, upload, wait_for_job
from tests.test_bad_input import assert_problem

MY_LAYER_MODEL = {"type": "sequential", "name": "tutorial_4_3", "input_shape": [72], "layers": [
    {"class_name": "MyLayer", "output_dim": 10}, {"class_name": "Activation", "activation": "softmax"}]}
MY_MODEL = {"type": "plugin_model", "class_name": "MyModel", "config": {"num_classes": 10}, "input_shape": [72]}
TUTORIAL_COMPILE = {**SEED_COMPILE, "optimizer": {"class_name": "RMSprop", "config": {"learning_rate": 0.001}},
                    "metrics": ["accuracy"]}


@pytest.fixture(scope="module")
def dataset_id(api_url):
    import httpx

    with httpx.Client(base_url=api_url, timeout=120) as http:
        return upload(http, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]


def local(client, model_id: str):
    import keras

    import kerasd_plugins.seed  # noqa: F401  (registers MyLayer and MyModel, as on the server)

    return keras.models.model_from_json(client.get(f"/v1/models/{model_id}/architecture").text)


def test_plugins_are_listed(client):
    body = client.get("/v1/plugins").json()
    assert body["enabled"] == ["kerasd_plugins.seed"]
    by_name = {item["registered_name"]: item for item in body["items"]}
    assert by_name["kerasd>MyLayer"]["kind"] == "layer" and by_name["kerasd>MyModel"]["kind"] == "model"
    assert by_name["kerasd>MyLayer"]["arguments"] == [{"name": "output_dim", "required": True}]
    assert {"name": "num_classes", "required": False, "default": 10} in by_name["kerasd>MyModel"]["arguments"]


@pytest.mark.parametrize(("spec", "params"), [(MY_LAYER_MODEL, 72 * 10), (MY_MODEL, 72 * 32 + 32 + 32 * 10 + 10)])
def test_plugin_specs_round_trip_through_json_and_train(client, dataset_id, spec, params):
    model = client.post("/v1/models", json=spec)
    assert model.status_code == 201, model.text
    model = model.json()
    assert model["summary"]["total_params"] == params
    assert model["summary"]["outputs"][0]["shape"] == [None, 10]
    architecture = client.get(f"/v1/models/{model['id']}/architecture").json()
    assert "kerasd>My" in str(architecture)
    again = client.post("/v1/models", json=architecture)  # the JSON back, exactly as served
    assert again.status_code == 201, again.text
    assert again.json()["summary"]["total_params"] == params
    assert local(client, model["id"]).count_params() == params

    request = fit_request(model["id"], dataset_id, epochs=2, batch_size=16)
    request["compile"] = copy.deepcopy(TUTORIAL_COMPILE)
    job = client.post("/v1/jobs", json=request)
    assert job.status_code == 201, job.text
    done = wait_for_job(client, job.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert len(done["history"]["loss"]) == 2


def test_names_outside_the_enabled_plugins_are_refused(client):
    assert_problem(client.post("/v1/models", json={**MY_MODEL, "class_name": "YourModel"}), 422, "YourModel",
                   "MyModel")
    layer = {**MY_LAYER_MODEL, "layers": [{"class_name": "MyLayr", "output_dim": 10}]}
    assert_problem(client.post("/v1/models", json=layer), 422, "MyLayr", "MyLayer")


def test_a_server_without_the_plugin_refuses_its_names(monkeypatch):
    """KERASD_PLUGINS decides what the catalog holds: emptied, the same documents are refused."""
    from app.core.settings import get_settings
    from app.models.keras_documents import model_document
    from app.models.specs import parse_model_spec
    from app.specchecker import building
    from app.specchecker.safety import Catalog, UnsafeSpec, check_config

    def catalog_with(plugins: str) -> Catalog:
        monkeypatch.setenv("KERASD_PLUGINS", plugins)
        for cached in (get_settings, building.plugins, building.catalog_lists):
            cached.cache_clear()
        return Catalog.from_lists(building.catalog_lists())

    try:
        full, bare = catalog_with("kerasd_plugins.seed"), catalog_with("")
    finally:
        monkeypatch.undo()
        for cached in (get_settings, building.plugins, building.catalog_lists):
            cached.cache_clear()
    assert bare.plugins == {} and set(full.plugins) == {"kerasd>MyLayer", "kerasd>MyModel"}
    document = model_document(parse_model_spec(MY_LAYER_MODEL), full)
    check_config(document, full)
    with pytest.raises(UnsafeSpec, match="not an enabled kerasd plugin"):
        check_config(document, bare)
    with pytest.raises(UnsafeSpec, match=r"unknown keras\.layers class 'MyLayer'"):
        check_config(model_document(parse_model_spec(MY_LAYER_MODEL), bare), bare)
