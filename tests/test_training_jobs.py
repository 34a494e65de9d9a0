"""Tutorial §3.1-§3.4 and §5 as jobs, each compared with plain Keras run the same way in the test process."""

from __future__ import annotations

import copy
import zipfile

import numpy as np
import pytest

from tests.keras_local import (
    assert_history_equal,
    assert_weights_equal,
    fit_on_seed,
    load_npy,
    local_model,
    seeded,
    trained_model,
)
from tests.seed import (
    SEED_COMPILE,
    SEED_MODEL,
    fit_request,
    npz_bytes,
    ref,
    run,
    upload,
)

SEED = 7


def compile_locally(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy", metrics=["categorical_accuracy"]
    )


def test_fit_matches_plain_keras(client, ids, seed_data, tmp_path):
    """§3.1 + §3.2: same seed, same arguments: the same history and the same weights as model.fit."""
    job = run(client, fit_request(ids["model"], ids["dataset"], epochs=3))
    with seeded(SEED):
        model = local_model(client, ids["model"])
        compile_locally(model)
        local = fit_on_seed(model, seed_data, epochs=3)
    assert_history_equal(job["history"], local)
    assert_weights_equal(trained_model(client, job["id"], tmp_path).get_weights(), model.get_weights())


def test_fit_arguments_follow_keras(client, ids, seed_data, tmp_path):
    """validation_split, shuffle, class_weight, validation_freq, a schedule, steps_per_execution, jit_compile."""
    request = fit_request(
        ids["model"],
        ids["dataset"],
        epochs=4,
        validation_split=0.2,
        shuffle=False,
        class_weight={"0": 2.0, "3": 0.5},
        validation_freq=2,
    )
    del request["fit"]["validation_data"]
    request["compile"]["optimizer"] = {
        "class_name": "SGD",
        "config": {
            "learning_rate": {
                "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5},
            }
        },
    }
    request["compile"]["steps_per_execution"] = 4
    request["compile"]["jit_compile"] = False
    job = run(client, request)

    import keras

    with seeded(SEED):
        model = local_model(client, ids["model"])
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5)
        model.compile(
            optimizer=keras.optimizers.SGD(schedule),
            loss="categorical_crossentropy",
            metrics=["categorical_accuracy"],
            steps_per_execution=4,
            jit_compile=False,
        )
        local = fit_on_seed(
            model,
            seed_data,
            epochs=4,
            validation_data=None,
            validation_split=0.2,
            shuffle=False,
            class_weight={0: 2.0, 3: 0.5},
            validation_freq=2,
        )
    # Keras records val_* only on validation epochs; the service's epoch table keeps each epoch's own logs.
    assert job["history"]["loss"] == pytest.approx(local["loss"], rel=1e-5)
    assert [v for v in job["history"]["val_loss"] if v is not None] == pytest.approx(local["val_loss"], rel=1e-5)
    assert_weights_equal(trained_model(client, job["id"], tmp_path).get_weights(), model.get_weights())


def test_sample_weight_follows_keras(client, ids, seed_data):
    weights = np.linspace(0.5, 1.5, 1000).astype("float32")
    extra = upload(client, "weights.npy", _npy(weights)).json()
    job = run(client, fit_request(ids["model"], ids["dataset"], epochs=1, sample_weight=ref(extra["id"])))
    with seeded(SEED):
        model = local_model(client, ids["model"])
        compile_locally(model)
        local = fit_on_seed(model, seed_data, epochs=1, sample_weight=weights)
    assert_history_equal(job["history"], local)

    both = fit_request(ids["model"], ids["dataset"], sample_weight=ref(extra["id"]), class_weight={"1": 2.0})
    refused = client.post("/v1/jobs", json=both)
    assert refused.status_code == 422 and "class_weight and sample_weight" in refused.json()["detail"]


def _npy(array: np.ndarray) -> bytes:
    from tests.seed import npy_bytes

    return npy_bytes(array)


def test_pipeline_fit_and_evaluate_match_tf_data(client, ids, seed_data):
    """§3.3 and §3.4: from_tensor_slices((x, y)).batch(32).repeat(), steps_per_epoch=30, validation_steps=3;
    then evaluate on arrays with batch_size=32 and on the pipeline with steps=30."""
    import tensorflow as tf

    def pipeline(x, y):
        return {
            "pipeline": {
                "x": ref(ids["dataset"], x),
                "y": ref(ids["dataset"], y),
                "ops": [{"op": "batch", "batch_size": 32}, {"op": "repeat"}],
            }
        }

    request = {
        "kind": "fit",
        "model_id": ids["model"],
        "compile": copy.deepcopy(SEED_COMPILE),
        "seed": SEED,
        "fit": {
            "x": pipeline("train_x", "train_y"),
            "epochs": 5,
            "steps_per_epoch": 30,
            "validation_data": pipeline("val_x", "val_y"),
            "validation_steps": 3,
        },
    }
    job = run(client, request)
    with seeded(SEED):
        model = local_model(client, ids["model"])
        compile_locally(model)
        train = tf.data.Dataset.from_tensor_slices((seed_data["train_x"], seed_data["train_y"])).batch(32).repeat()
        val = tf.data.Dataset.from_tensor_slices((seed_data["val_x"], seed_data["val_y"])).batch(32).repeat()
        local = model.fit(
            train, epochs=5, steps_per_epoch=30, validation_data=val, validation_steps=3, verbose=0
        ).history
    assert_history_equal(job["history"], local)

    on_arrays = run(
        client,
        {
            "kind": "evaluate",
            "source_job_id": job["id"],
            "evaluate": {"x": ref(ids["dataset"], "val_x"), "y": ref(ids["dataset"], "val_y"), "batch_size": 32},
        },
    )
    on_pipeline = run(
        client,
        {"kind": "evaluate", "source_job_id": job["id"], "evaluate": {"x": pipeline("val_x", "val_y"), "steps": 30}},
    )
    expected_arrays = model.evaluate(seed_data["val_x"], seed_data["val_y"], batch_size=32, verbose=0)
    expected_pipeline = model.evaluate(val, steps=30, verbose=0)
    assert on_arrays["result"]["evaluation"]["list"] == pytest.approx(expected_arrays, rel=1e-5)
    assert on_pipeline["result"]["evaluation"]["list"] == pytest.approx(expected_pipeline, rel=1e-5)
    assert set(on_arrays["result"]["evaluation"]["metrics"]) == {"loss", "categorical_accuracy"}


def test_predict_and_whole_model_artifacts(client, ids, seed_data, tmp_path):
    """§3.4 predict and §5.1-§5.3: model.keras and model.h5 load with load_model and predict what the worker
    predicted; architecture.json/yaml describe the model; savedmodel.zip loads with tf.saved_model.load."""
    import keras
    import tensorflow as tf
    import yaml

    request = fit_request(ids["model"], ids["dataset"], epochs=2)
    request["artifacts"] = [
        "weights.h5",
        "model.keras",
        "model.h5",
        "architecture.json",
        "architecture.yaml",
        "history.csv",
        "savedmodel.zip",
    ]
    fit = run(client, request)
    listed = {a["name"]: a for a in client.get(f"/v1/jobs/{fit['id']}/artifacts").json()}
    assert set(listed) == set(request["artifacts"])
    assert all(len(a["sha256"]) == 64 and a["size_bytes"] > 0 for a in listed.values())

    predicted = run(
        client,
        {
            "kind": "predict",
            "source_job_id": fit["id"],
            "predict": {"x": ref(ids["dataset"], "val_x"), "batch_size": 32},
        },
    )
    service = load_npy(client.get(f"/v1/jobs/{predicted['id']}/artifacts/predictions.npy").content)
    assert service.shape == (200, 10)
    np.testing.assert_allclose(np.array(predicted["result"]["predictions"]), service, rtol=1e-6)

    for name in ("model.keras", "model.h5"):
        path = tmp_path / name
        path.write_bytes(client.get(f"/v1/jobs/{fit['id']}/artifacts/{name}").content)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded.predict(seed_data["val_x"], verbose=0), service, rtol=1e-5, atol=1e-6)

    architecture = client.get(f"/v1/jobs/{fit['id']}/artifacts/architecture.json").json()
    assert yaml.safe_load(client.get(f"/v1/jobs/{fit['id']}/artifacts/architecture.yaml").text) == architecture
    history_csv = client.get(f"/v1/jobs/{fit['id']}/artifacts/history.csv").text.splitlines()
    assert history_csv[0].split(",")[0] == "epoch" and len(history_csv) == 3

    archive = tmp_path / "savedmodel.zip"
    archive.write_bytes(client.get(f"/v1/jobs/{fit['id']}/artifacts/savedmodel.zip").content)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "savedmodel")
    served = tf.saved_model.load(str(tmp_path / "savedmodel"))
    np.testing.assert_allclose(served.serve(seed_data["val_x"]).numpy(), service, rtol=1e-5, atol=1e-6)


def test_same_seed_same_weights(client, ids, tmp_path):
    first = run(client, fit_request(ids["model"], ids["dataset"], epochs=2))
    second = run(client, fit_request(ids["model"], ids["dataset"], epochs=2))
    a = client.get(f"/v1/jobs/{first['id']}/artifacts/weights.h5")
    b = client.get(f"/v1/jobs/{second['id']}/artifacts/weights.h5")
    assert_weights_equal(
        trained_model(client, first["id"], tmp_path).get_weights(),
        trained_model(client, second["id"], tmp_path).get_weights(),
        atol=0,
    )
    assert first["history"] == second["history"]
    assert a.status_code == b.status_code == 200


def test_warm_start_and_continue(client, ids, seed_data, tmp_path):
    """Start from an earlier job's weights, from uploaded .weights.h5, and continue with initial_epoch."""
    import keras

    base = run(client, fit_request(ids["model"], ids["dataset"], epochs=2))
    frozen = fit_request(ids["model"], ids["dataset"], epochs=1)
    frozen["compile"]["optimizer"] = {"class_name": "SGD", "config": {"learning_rate": 0.0}}
    from_job = run(client, {**frozen, "initial_weights": {"job_id": base["id"]}})
    assert_weights_equal(
        trained_model(client, from_job["id"], tmp_path).get_weights(),
        trained_model(client, base["id"], tmp_path).get_weights(),
        atol=0,
    )

    local = local_model(client, ids["model"])
    local.set_weights([np.full(w.shape, 0.01, dtype=w.dtype) for w in local.get_weights()])
    local.save_weights(tmp_path / "mine.weights.h5")
    uploaded = client.post(
        "/v1/weights", files={"file": ("mine.weights.h5", (tmp_path / "mine.weights.h5").read_bytes())}
    )
    assert uploaded.status_code == 201, uploaded.text
    from_upload = run(client, {**frozen, "initial_weights": {"weights_id": uploaded.json()["id"]}})
    assert_weights_equal(trained_model(client, from_upload["id"], tmp_path).get_weights(), local.get_weights(), atol=0)

    continued = run(
        client, {**fit_request(ids["model"], ids["dataset"], epochs=4, initial_epoch=2), "source_job_id": base["id"]}
    )
    assert [e["epoch"] for e in continued["epochs"]] == [2, 3]
    with seeded(SEED):
        model = trained_model(client, base["id"], tmp_path)
        compile_locally(model)
        expected = fit_on_seed(model, seed_data, epochs=4, initial_epoch=2)
    assert_history_equal(continued["history"], expected)
    assert keras.__version__.startswith("3.")


def test_digits_mlp_reaches_95_percent(client, tmp_path):
    """scikit-learn's bundled digits (nothing downloaded): a small MLP trained through the service."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    dataset = upload(
        client, "digits.npz", npz_bytes(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ).json()
    dense = [
        {"class_name": "Dense", "units": units, "activation": how} for units, how in ((64, "relu"), (10, "softmax"))
    ]
    model = client.post(
        "/v1/models", json={"type": "sequential", "name": "digits", "input_shape": [64], "layers": dense}
    ).json()
    fit = run(
        client,
        {
            "kind": "fit",
            "model_id": model["id"],
            "seed": 1,
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {
                "x": ref(dataset["id"], "x_train"),
                "y": ref(dataset["id"], "y_train"),
                "epochs": 40,
                "batch_size": 32,
            },
        },
    )
    evaluated = run(
        client,
        {
            "kind": "evaluate",
            "source_job_id": fit["id"],
            "evaluate": {"x": ref(dataset["id"], "x_test"), "y": ref(dataset["id"], "y_test")},
        },
    )
    assert evaluated["result"]["evaluation"]["metrics"]["accuracy"] >= 0.95


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"compile": {"loss": "mse", "sample_weight_mode": "temporal"}}, "sample_weight"),
        ({"compile": {"loss": "mse", "target_tensors": []}}, "fit's `y`"),
        ({"compile": {"loss": "mse", "distribute": "mirrored"}}, "MirroredStrategy"),
        ({"estimator": {}}, "removed in TF 2.16"),
    ],
)
def test_removed_keras_arguments_name_their_replacement(client, ids, body, needle):
    request = fit_request(ids["model"], ids["dataset"])
    for key, value in body.items():
        request[key] = {**request.get(key, {}), **value} if isinstance(request.get(key), dict) else value
    response = client.post("/v1/jobs", json=request)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"]


def test_an_unbuilt_model_is_evaluated_and_predicted_after_fit(client, ids, seed_data):
    """A Sequential without an input shape is built by its first fit; later jobs use that built model."""
    unbuilt = client.post("/v1/models", json={k: v for k, v in SEED_MODEL.items() if k != "input_shape"}).json()
    assert unbuilt["summary"]["built"] is False
    fit = run(client, fit_request(unbuilt["id"], ids["dataset"], epochs=1))
    evaluated = run(
        client,
        {
            "kind": "evaluate",
            "source_job_id": fit["id"],
            "evaluate": {"x": ref(ids["dataset"], "val_x"), "y": ref(ids["dataset"], "val_y")},
        },
    )
    predicted = run(
        client, {"kind": "predict", "source_job_id": fit["id"], "predict": {"x": ref(ids["dataset"], "val_x")}}
    )
    assert evaluated["result"]["evaluation"]["metrics"]["loss"] == pytest.approx(
        fit["history"]["val_loss"][-1], rel=1e-4
    )
    assert np.array(predicted["result"]["predictions"]).shape == (200, 10)


def test_a_model_uploaded_as_keras_file_trains_from_its_weights(client, ids, tmp_path):
    """Tutorial §5.3: load_model's file sent to the service; the first job starts from the weights it holds."""
    import keras

    local = keras.Sequential(
        [keras.Input((72,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    local.set_weights([np.full(w.shape, 0.02, dtype=w.dtype) for w in local.get_weights()])
    local.save(tmp_path / "all_model.keras")
    content = (tmp_path / "all_model.keras").read_bytes()
    created = client.post("/v1/models", files={"file": ("all_model.keras", content)})
    assert created.status_code == 201, created.text
    frozen = fit_request(created.json()["id"], ids["dataset"], epochs=1)
    frozen["compile"]["optimizer"] = {"class_name": "SGD", "config": {"learning_rate": 0.0}}
    job = run(client, frozen)
    assert_weights_equal(trained_model(client, job["id"], tmp_path).get_weights(), local.get_weights(), atol=0)
