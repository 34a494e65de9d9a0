"""The SDK against the real API and worker: plain resources, errors, events that survive a dropped
connection, and the Keras bridge's argument handling. Examples of whole tutorial sections are in
test_examples.py."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlparse

import numpy as np
import pytest

import kerasd
from tests.sdk_helpers import CuttingProxy
from tests.seed import SEED_COMPILE, SEED_MODEL, seed_arrays


@pytest.fixture()
def sdk(api_url: str):
    with kerasd.Client(api_url, verbose=0) as client:
        yield client


@pytest.fixture(scope="module")
def seed_data(api_url: str) -> dict:
    with kerasd.Client(api_url, verbose=0) as client:
        arrays = seed_arrays()
        dataset = client.datasets.upload(arrays, name="seed.npz")
        model = client.models.create(SEED_MODEL)
        return {"arrays": arrays, "dataset": dataset, "model": model}


def fit_body(seed_data: dict, **fit) -> dict:
    dataset_id = seed_data["dataset"]["id"]
    return {"kind": "fit", "model_id": seed_data["model"]["id"], "compile": SEED_COMPILE, "seed": 3,
            "fit": {"x": {"dataset_id": dataset_id, "array": "train_x"},
                    "y": {"dataset_id": dataset_id, "array": "train_y"}, "epochs": 10, "batch_size": 100,
                    "validation_data": {"x": {"dataset_id": dataset_id, "array": "val_x"},
                                        "y": {"dataset_id": dataset_id, "array": "val_y"}}, **fit}}


# --- plain resources ----------------------------------------------------------------------------

def test_datasets_upload_once_per_content_and_come_back(sdk: kerasd.Client, seed_data: dict) -> None:
    arrays = seed_data["arrays"]
    before = sdk.datasets.list(limit=500).total
    again = kerasd.Client(sdk.base_url, verbose=0).datasets.upload(arrays)  # a fresh client: asks the server
    assert again["id"] == seed_data["dataset"]["id"]
    assert again["sha256"] == seed_data["dataset"]["sha256"]
    assert sdk.datasets.list(limit=500).total == before, "the same arrays were stored twice"

    single = sdk.datasets.upload(arrays["val_x"], filename="val_x.npy")
    assert single["format"] == "npy" and single["arrays"] == [{"name": "val_x", "shape": [200, 72],
                                                               "dtype": "float32"}]
    back = sdk.datasets.download(seed_data["dataset"]["id"])
    assert set(back) == set(arrays) and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    assert np.array_equal(sdk.datasets.download(single["id"]), arrays["val_x"])


def test_models_resource(sdk: kerasd.Client) -> None:
    created = sdk.models.create({**SEED_MODEL, "name": "sdk_models_resource"})
    assert created["summary"]["total_params"] == 3722
    assert sdk.models.get(created["id"])["name"] == "sdk_models_resource"
    assert created["id"] in {m["id"] for m in sdk.models.list(limit=500)}
    architecture = sdk.models.architecture(created["id"])
    assert '"class_name": "Sequential"' in architecture or '"class_name":"Sequential"' in architecture
    assert "class_name: Sequential" in sdk.models.architecture(created["id"], format="yaml")
    sdk.models.delete(created["id"])
    with pytest.raises(kerasd.NotFound):
        sdk.models.get(created["id"])


def test_a_job_through_the_plain_resources(sdk: kerasd.Client, seed_data: dict, tmp_path) -> None:
    job = sdk.jobs.create(fit_body(seed_data, epochs=3))
    assert job["status"] in ("queued", "running")
    events = list(sdk.jobs.events(job["id"]))
    types = [e.type for e in events]
    assert types[0] == "queued" and types[-1] == "finished", types
    assert [e.epoch for e in events if e.type == "epoch"] == [0, 1, 2]
    assert all(isinstance(e, kerasd.Event) and e.job_id == job["id"] for e in events)
    done = sdk.jobs.wait(job["id"], timeout=120)
    assert done["status"] == "succeeded"
    assert done["history"]["val_loss"] == [e.logs["val_loss"] for e in events if e.type == "epoch"]
    assert job["id"] in {j["id"] for j in sdk.jobs.list(model_id=seed_data["model"]["id"], status="succeeded")}
    names = {a["name"] for a in sdk.jobs.artifacts(job["id"])}
    assert {"weights.h5", "architecture.json"} <= names
    path = sdk.jobs.artifact(job["id"], "weights.h5", tmp_path)
    assert path.name == "model.weights.h5" and path.stat().st_size > 0
    assert sdk.jobs.artifact(job["id"], "architecture.json").startswith(b"{")
    # Resuming after the last event of an ended job gives nothing more.
    assert list(sdk.jobs.events(job["id"], last_event_id=events[-1].id)) == []


def test_cancel_conflict_and_retry(sdk: kerasd.Client, seed_data: dict) -> None:
    job = sdk.jobs.create(fit_body(seed_data, epochs=100_000))  # trains until cancelled, in both attempts
    with pytest.raises(kerasd.Conflict) as conflict:
        sdk.jobs.delete(job["id"])
    assert conflict.value.status_code == 409 and job["id"] in conflict.value.detail
    sdk.jobs.cancel(job["id"])
    ended = sdk.jobs.wait(job["id"], timeout=120)
    assert ended["status"] == "cancelled"
    assert [e.type for e in sdk.jobs.events(job["id"])][-1] == "cancelled"
    retried = sdk.jobs.retry(job["id"])
    assert retried["status"] in ("queued", "running")
    sdk.jobs.cancel(job["id"])
    assert sdk.jobs.wait(job["id"], timeout=120)["status"] == "cancelled"


# --- errors -------------------------------------------------------------------------------------

def test_errors_carry_the_servers_message_and_field_errors(sdk: kerasd.Client, seed_data: dict) -> None:
    with pytest.raises(kerasd.ValidationError) as invalid:
        sdk.jobs.create(fit_body(seed_data, epochs=0, batch_size=-1))
    error = invalid.value
    assert error.status_code == 422 and isinstance(error, kerasd.APIError)
    assert error.problem["status"] == 422 and error.problem["detail"] == error.detail
    assert set(error.field_errors) >= {"fit.epochs", "fit.batch_size"}
    assert "greater than or equal to 1" in error.field_errors["fit.epochs"]
    assert "fit.epochs" in str(error) and error.detail in str(error)

    with pytest.raises(kerasd.ValidationError) as unknown:
        sdk.jobs.create({**fit_body(seed_data), "fit": {**fit_body(seed_data)["fit"],
                                                        "x": {"dataset_id": "f" * 32, "array": "x"}}})
    assert "upload it" in unknown.value.detail and "fit.x" in unknown.value.field_errors

    with pytest.raises(kerasd.NotFound) as missing:
        sdk.jobs.get("0" * 32)
    assert missing.value.status_code == 404 and "No job with id" in str(missing.value)

    with pytest.raises(kerasd.ValidationError) as spec:
        sdk.models.create({"type": "sequential", "layers": [{"class_name": "Lambda", "function": "x"}]})
    assert "Lambda" in spec.value.detail

    with pytest.raises(kerasd.APIConnectionError):
        kerasd.Client("http://127.0.0.1:9", timeout=2).version()


def test_async_client(api_url: str, seed_data: dict) -> None:
    async def scenario() -> tuple[list[str], dict, type]:
        async with kerasd.AsyncClient(api_url, verbose=0) as client:
            dataset = await client.datasets.upload(seed_data["arrays"])
            assert dataset["id"] == seed_data["dataset"]["id"]
            job = await client.jobs.create(fit_body(seed_data, epochs=2))
            types = [event.type async for event in client.jobs.events(job["id"])]
            done = await client.jobs.wait(job["id"], timeout=120)
            try:
                await client.models.get("0" * 32)
            except kerasd.NotFound as exc:
                error = type(exc)
            return types, done, error

    types, done, error = asyncio.run(scenario())
    assert types[-1] == "finished" and types.count("epoch") == 2
    assert done["status"] == "succeeded" and error is kerasd.NotFound


# --- events over a connection that drops ----------------------------------------------------------

def test_events_resume_after_a_dropped_connection(api_url: str, sdk: kerasd.Client, seed_data: dict) -> None:
    proxy = CuttingProxy(urlparse(api_url).port, cut_after=3)
    try:
        with kerasd.Client(proxy.url, verbose=0) as through_proxy:
            job = through_proxy.jobs.create(fit_body(seed_data))
            events = list(through_proxy.jobs.events(job["id"]))
    finally:
        proxy.close()
    assert proxy.record.cuts == 1, "the proxy never cut the stream"
    requests = proxy.record.event_requests
    assert len(requests) >= 2 and b"last-event-id:" in requests[1].lower()
    assert [e.epoch for e in events if e.type == "epoch"] == list(range(10))
    ids = [tuple(map(int, e.id.split("-"))) for e in events]
    assert ids == sorted(set(ids)), "an event was repeated or came out of order"
    # Exactly what a reader that never lost its connection gets.
    assert [e.id for e in sdk.jobs.events(job["id"])] == [e.id for e in events]


def test_fit_resumes_its_progress_after_a_dropped_connection(api_url: str, capsys) -> None:
    import keras

    proxy = CuttingProxy(urlparse(api_url).port, cut_after=4)
    arrays = seed_arrays(5)
    try:
        with kerasd.Client(proxy.url) as client:
            model = client.remote(keras.Sequential([keras.Input((72,)), keras.layers.Dense(16, activation="relu"),
                                                    keras.layers.Dense(10, activation="softmax")]), seed=1)
            model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy",
                          metrics=["categorical_accuracy"])
            history = model.fit(arrays["train_x"], arrays["train_y"], epochs=10, batch_size=100,
                                validation_data=(arrays["val_x"], arrays["val_y"]))
    finally:
        proxy.close()
    out = capsys.readouterr().out
    assert proxy.record.cuts == 1 and len(proxy.record.event_requests) >= 2
    assert re.findall(r"^Epoch (\d+)/10$", out, re.M) == [str(i) for i in range(1, 11)], out
    finals = re.findall(r"^10/10 \[=+\].*val_loss: ([0-9.]+)$", out, re.M)
    assert len(finals) == 10, out
    assert history.epoch == list(range(10)) and len(history.history["val_loss"]) == 10
    assert [f"{v:.4f}" for v in history.history["val_loss"]] == finals


def test_health_and_one_dataset_or_weights_file_by_id(sdk: kerasd.Client, seed_data: dict, tmp_path) -> None:
    assert sdk.health() == {"status": "ok"}
    shown = sdk.datasets.get(seed_data["dataset"]["id"])
    assert shown == seed_data["dataset"]
    own = sdk.datasets.upload(np.arange(12, dtype="float32").reshape(4, 3), filename="to-delete.npy")
    assert sdk.datasets.get(own["id"])["arrays"] == [{"name": "to-delete", "shape": [4, 3], "dtype": "float32"}]
    assert sdk.datasets.delete(own["id"]) is None
    with pytest.raises(kerasd.NotFound) as missing:
        sdk.datasets.get(own["id"])
    assert own["id"] in missing.value.detail
    with pytest.raises(kerasd.NotFound):
        sdk.datasets.delete(own["id"])

    from tests.model_files import small_model

    path = tmp_path / "small.weights.h5"
    small_model().save_weights(path)
    uploaded = sdk.weights.upload(path)
    assert uploaded["size_bytes"] == path.stat().st_size
    assert sdk.weights.get(uploaded["id"]) == uploaded
    with pytest.raises(kerasd.NotFound):
        sdk.weights.get("0" * 32)


def test_export_says_which_artifact_a_worker_makes_instead(sdk: kerasd.Client, tmp_path) -> None:
    import keras

    remote = sdk.remote(keras.Sequential([keras.Input((72,)), keras.layers.Dense(10, activation="softmax")]))
    with pytest.raises(NotImplementedError, match=r"client\.jobs\.artifact\(job_id, 'savedmodel\.zip', path\)"):
        remote.export(tmp_path / "exported")
    assert not (tmp_path / "exported").exists()


# --- the Keras bridge's arguments ----------------------------------------------------------------

def test_keras_objects_become_configs_and_callbacks_declared_specs(sdk: kerasd.Client, tmp_path) -> None:
    import keras
    import tensorflow as tf

    remote = sdk.remote(keras.Sequential([keras.Input((72,)), keras.layers.Dense(10, activation=tf.nn.softmax)]))
    remote.compile(optimizer=keras.optimizers.Adam(0.001), loss=tf.losses.categorical_crossentropy,
                   metrics=[keras.metrics.categorical_accuracy, keras.metrics.AUC(name="auc"), "accuracy"])
    arrays = seed_arrays(1)
    history = remote.fit(arrays["train_x"], arrays["train_y"], epochs=3, batch_size=100, verbose=0,
                         validation_split=0.2,
                         callbacks=[keras.callbacks.EarlyStopping(patience=2, monitor="val_loss", min_delta=0.5),
                                    keras.callbacks.CSVLogger(str(tmp_path / "log.csv"), separator=";")])
    submitted = history.job["request"]
    assert submitted["compile"]["optimizer"]["class_name"] == "Adam"
    assert submitted["compile"]["optimizer"]["config"]["learning_rate"] == 0.001
    assert submitted["compile"]["loss"] == "categorical_crossentropy"
    assert submitted["compile"]["metrics"][0] == "categorical_accuracy"
    assert submitted["compile"]["metrics"][1]["class_name"] == "AUC"
    stopping, logger = submitted["callbacks"]
    assert stopping["class_name"] == "EarlyStopping" and stopping["config"]["patience"] == 2
    assert stopping["config"]["min_delta"] == 0.5 and stopping["config"]["monitor"] == "val_loss"
    assert logger == {"class_name": "CSVLogger", "config": {"separator": ";", "append": False}}
    # The worker's CSV log came back to where the callback said.
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("epoch;")
    assert set(history.history) >= {"loss", "val_loss", "auc", "accuracy", "categorical_accuracy"}

    with pytest.raises(TypeError, match="custom Callback is code"):
        remote.fit(arrays["train_x"], arrays["train_y"], callbacks=[keras.callbacks.LambdaCallback()])
    with pytest.raises(TypeError, match=r"tf\.data\.Dataset runs locally"):
        remote.fit(tf.data.Dataset.from_tensor_slices((arrays["train_x"], arrays["train_y"])).batch(10))


def test_a_remote_model_starts_from_the_local_weights(sdk: kerasd.Client) -> None:
    import keras

    keras.utils.set_random_seed(11)
    local = keras.Sequential([keras.Input((72,)), keras.layers.Dense(10, activation="softmax")])
    local.compile(loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    arrays = seed_arrays(2)
    expected = local.evaluate(arrays["val_x"], arrays["val_y"], batch_size=50, verbose=0)

    remote = sdk.remote(local)
    remote.compile(loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    loss, accuracy = remote.evaluate(arrays["val_x"], arrays["val_y"], batch_size=50, verbose=0)
    assert loss == pytest.approx(expected[0], rel=1e-5) and accuracy == pytest.approx(expected[1], abs=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(remote.get_weights(), local.get_weights(), strict=True))
    predictions = remote.predict(arrays["val_x"], verbose=0)
    assert np.allclose(predictions, local.predict(arrays["val_x"], verbose=0), atol=1e-6)


# --- the command line, on the same client --------------------------------------------------------

def test_cli_client_commands(api_url: str, tmp_path) -> None:
    import json
    import subprocess
    import sys

    def kerasd_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kerasd", *args, "--url", api_url], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)

    arrays = seed_arrays(4)
    np.savez(tmp_path / "seed.npz", **arrays)
    (tmp_path / "model.json").write_text(json.dumps(SEED_MODEL))
    dataset = json.loads(kerasd_cli("datasets", "upload", "seed.npz", "--json").stdout)
    model = json.loads(kerasd_cli("models", "create", "model.json", "--json").stdout)
    assert model["summary"]["total_params"] == 3722
    (tmp_path / "job.json").write_text(json.dumps({
        "kind": "fit", "model_id": model["id"], "compile": SEED_COMPILE,
        "fit": {"x": {"dataset_id": dataset["id"], "array": "train_x"},
                "y": {"dataset_id": dataset["id"], "array": "train_y"}, "epochs": 3, "batch_size": 100}}))
    watched = kerasd_cli("jobs", "submit", "job.json", "--watch")
    assert watched.returncode == 0, watched.stderr
    assert re.findall(r"^Epoch (\d)/3$", watched.stdout, re.M) == ["1", "2", "3"]
    job_id = re.search(r"^job ([0-9a-f]{32}) succeeded$", watched.stdout, re.M).group(1)
    listed = json.loads(kerasd_cli("jobs", "list", "--status", "succeeded", "--json").stdout)
    assert job_id in [item["id"] for item in listed["items"]]
    fetched = kerasd_cli("artifacts", "get", job_id, "weights.h5", "-o", str(tmp_path / "w.weights.h5"))
    assert fetched.returncode == 0 and (tmp_path / "w.weights.h5").stat().st_size > 0
    missing = kerasd_cli("jobs", "cancel", "0" * 32)
    assert missing.returncode == 1 and "404 Not Found: No job with id" in missing.stderr


def test_datasets_filter_by_sha256(api_url: str, sdk: kerasd.Client, seed_data: dict) -> None:
    import httpx

    sha256 = seed_data["dataset"]["sha256"]
    page = httpx.get(f"{api_url}/v1/datasets", params={"sha256": sha256}).json()
    assert page["total"] >= 1 and {item["sha256"] for item in page["items"]} == {sha256}
    assert sdk.datasets.find(sha256)["sha256"] == sha256
    assert sdk.datasets.find("0" * 64) is None


def test_large_transfers_show_a_progress_bar_unless_quiet(api_url: str, tmp_path, capsys) -> None:
    big = np.random.default_rng(9).random((100_000, 4))  # 3.2 MB
    with kerasd.Client(api_url) as client:
        dataset = client.datasets.upload(big, filename="big.npy")
        client.datasets.download(dataset["id"], tmp_path / "big.npy")
    err = capsys.readouterr().err
    assert re.search(r"^uploading big\.npy: 3\.2/3\.2 MB \[=+\] 100%", err, re.M), err
    assert re.search(r"^downloading big\.npy: 3\.2/3\.2 MB \[=+\] 100%", err, re.M), err
    assert np.array_equal(np.load(tmp_path / "big.npy"), big)
    with kerasd.Client(api_url, verbose=0) as quiet:
        quiet.datasets.upload(big * 2, filename="big2.npy")
        quiet.datasets.download(dataset["id"], tmp_path / "again.npy")
    assert capsys.readouterr().err == ""
