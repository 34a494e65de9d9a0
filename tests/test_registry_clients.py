"""The model registry from the SDK (both clients) and the CLI, against the real API and worker: register a job,
move an alias, read a version's lineage, download a file with its sha256 checked, pull a local Keras model that
predicts what the server's predict job on the alias predicts."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import uuid
import zipfile

import numpy as np
import pytest

import kerasd
from tests.seed import SEED_MODEL, fit_request, npz_bytes, ref, upload, wait_for_job
from tests.services import kerasd_command
from tests.tenancy import keyed_client, make_tenant


@pytest.fixture(scope="module")
def api(keyed_api) -> str:
    return keyed_api[0]


@pytest.fixture(scope="module")
def trained(api) -> dict:
    """A tenant, its dataset and a succeeded one-epoch fit job."""
    _tenant, key = make_tenant("registry-clients")
    rng = np.random.default_rng(5)
    arrays = {"train_x": rng.random((100, 72), dtype="float32"),
              "train_y": np.eye(10, dtype="float32")[rng.integers(0, 10, 100)],
              "val_x": rng.random((20, 72), dtype="float32"),
              "val_y": np.eye(10, dtype="float32")[rng.integers(0, 10, 20)]}
    with keyed_client(api, key) as http:
        dataset = upload(http, "clients.npz", npz_bytes(**arrays)).json()
        model = http.post("/v1/models", json=SEED_MODEL).json()
        created = http.post("/v1/jobs", json=fit_request(model["id"], dataset["id"], epochs=1, batch_size=50))
        job = wait_for_job(http, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return {"key": key, "job": job, "dataset": dataset, "val_x": arrays["val_x"]}


def cli(api: str, key: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(kerasd_command(*args, "--url", api, "--api-key", key), capture_output=True, text=True,
                          timeout=120)


def test_the_sdk_registers_aliases_downloads_and_pulls_a_model_that_predicts_as_the_server(api, trained, tmp_path):
    name = f"sdk-{uuid.uuid4().hex[:6]}"
    job = trained["job"]
    with kerasd.Client(api, api_key=trained["key"], verbose=0) as client:
        first = client.registry.register(job, name, description="from the SDK")  # makes the registered model
        second = client.registry.register(job["id"], name)
        assert (first.reference, second.reference) == (f"{name}/1", f"{name}/2")
        assert first.lineage["job"]["id"] == job["id"] and first["description"] == "from the SDK"

        moved = client.registry.set_alias(f"{name}/1", "champion")
        assert (moved["version"], moved["previous_version"]) == (1, None)
        assert second.set_alias("champion")["previous_version"] == 1
        champion = client.registry.get(f"{name}@champion")
        assert champion["version"] == 2 and champion["aliases"] == ["champion"]
        listed = {model["name"]: model for model in client.registry.list()}
        assert listed[name]["aliases"] == {"champion": 2} and listed[name]["latest_version"] == 2
        whole = client.registry.get(name)
        assert [version.reference for version in whole["versions"]] == [f"{name}/1", f"{name}/2"]

        files = {artifact["name"]: artifact["sha256"] for artifact in champion["artifacts"]}
        path = client.registry.download(f"{name}@champion", "weights.h5", tmp_path)
        assert path.name == "model.weights.h5" and hashlib.sha256(path.read_bytes()).hexdigest() == files["weights.h5"]
        data = champion.download("architecture.json")
        assert hashlib.sha256(data).hexdigest() == files["architecture.json"]

        pulled = champion.pull()
        created = client.jobs.create(kind="predict", model_version=f"{name}@champion",
                                     predict={"x": ref(trained["dataset"]["id"], "val_x")})
        on_server = np.asarray(client.jobs.wait(created["id"])["result"]["predictions"])
        np.testing.assert_allclose(pulled.predict(trained["val_x"], verbose=0), on_server, atol=1e-6)

        client.registry.delete_alias(name, "champion")
        with pytest.raises(kerasd.NotFound, match="no alias 'champion'"):
            client.registry.get(f"{name}@champion")
        with pytest.raises(ValueError, match="names no version"):
            client.registry.download(f"{name}", "weights.h5")
        client.registry.delete(name)
        with pytest.raises(kerasd.NotFound):
            client.registry.get(name)


def test_the_async_client_does_the_same(api, trained):
    name = f"async-{uuid.uuid4().hex[:6]}"

    async def scenario() -> None:
        async with kerasd.AsyncClient(api, api_key=trained["key"], verbose=0) as client:
            made = await client.registry.create(name, description="async")
            assert made["latest_version"] is None
            with pytest.raises(kerasd.Conflict):
                await client.registry.create(name)
            version = await client.registry.register(trained["job"], name, create=False)
            assert (await version.set_alias("prod"))["version"] == 1
            found = await client.registry.get(f"{name}@prod")
            assert found.reference == f"{name}/1" and found.lineage == version.lineage
            assert [v["version"] for v in await client.registry.versions(name)] == [1]
            weights = await found.download("weights.h5")
            assert hashlib.sha256(weights).hexdigest() == next(a["sha256"] for a in found["artifacts"]
                                                               if a["name"] == "weights.h5")
            model = await found.pull()
            assert model.count_params() > 0
            await client.registry.delete(name)

    asyncio.run(scenario())


def test_the_cli_registers_lists_shows_lineage_moves_aliases_and_downloads(api, trained, tmp_path):
    name, key, job = f"cli-{uuid.uuid4().hex[:6]}", trained["key"], trained["job"]
    made = cli(api, key, "registry", "register", job["id"][:10], name, "--description", "from the CLI")
    assert made.returncode == 0, made.stderr
    assert f"registered {name}/1 from job {job['id']}" in made.stdout

    aliased = cli(api, key, "registry", "alias", f"{name}/1", "staging")
    assert aliased.returncode == 0 and f"{name}@staging → version 1" in aliased.stdout
    listed = cli(api, key, "registry", "list")
    assert listed.returncode == 0 and name in listed.stdout and "staging→1" in listed.stdout

    shown = cli(api, key, "registry", "get", f"{name}@staging")
    assert shown.returncode == 0, shown.stderr
    for expected in (f"{name}/1  from the CLI", f"job       {job['id']}", trained["dataset"]["sha256"][:16],
                     "aliases   staging", "weights.h5"):
        assert expected in shown.stdout, shown.stdout
    as_json = json.loads(cli(api, key, "registry", "get", f"{name}/1", "--json").stdout)
    assert as_json["lineage"]["job"]["id"] == job["id"]
    versions = cli(api, key, "registry", "get", name)
    assert versions.returncode == 0 and "VERSION" in versions.stdout and "staging" in versions.stdout

    downloaded = cli(api, key, "registry", "download", f"{name}@staging", "-o", str(tmp_path))
    assert downloaded.returncode == 0, downloaded.stderr
    file = tmp_path / "model.keras"
    assert file.exists() and hashlib.sha256(file.read_bytes()).hexdigest() == next(
        a["sha256"] for a in as_json["artifacts"] if a["name"] == "model.keras")

    exported = cli(api, key, "registry", "export", f"{name}@staging", "--sample", f"{trained['dataset']['id']}:val_x")
    assert exported.returncode == 0, exported.stderr
    assert f"{name}/1 tf_saved_model: verified" in exported.stdout and "over 20 rows" in exported.stdout

    removed = cli(api, key, "registry", "alias", name, "staging", "--delete")
    assert removed.returncode == 0, removed.stderr
    missing = cli(api, key, "registry", "get", f"{name}@staging")
    assert missing.returncode == 1 and "no alias 'staging'" in missing.stderr


def test_a_model_fitted_through_the_bridge_is_registered_from_itself(api, trained):
    import keras

    rng = np.random.default_rng(9)
    x, y = rng.random((64, 8), dtype="float32"), np.eye(2, dtype="float32")[rng.integers(0, 2, 64)]
    name = f"bridge-{uuid.uuid4().hex[:6]}"
    with kerasd.Client(api, api_key=trained["key"], verbose=0) as client:
        model = client.remote(keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")]),
                              seed=4)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        with pytest.raises(ValueError, match="not been fitted"):
            client.registry.register(model, name)
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        version = client.registry.register(model, name)
        assert version.lineage["job"]["id"] == model.trained_job_id == model.last_job["id"]
        assert version.lineage["seed"] == 4
        np.testing.assert_allclose(version.pull().predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_the_sdk_exports_a_version_and_returns_its_parity_report(api, trained):
    name = f"export-{uuid.uuid4().hex[:6]}"
    with kerasd.Client(api, api_key=trained["key"], verbose=0) as client:
        version = client.registry.register(trained["job"], name)
        report = version.export("tf_saved_model", sample=trained["val_x"][:7], timeout=300)
        assert report["status"] == "succeeded" and report["reference"] == f"{name}/1"
        verification = report["verification"]
        assert verification["status"] == "verified" and verification["rows"] == 7
        assert max(verification["max_abs_diff"].values()) <= verification["tolerance"] == 1e-5
        data = client.jobs.artifact(report["job_id"], "savedmodel.zip")
        assert hashlib.sha256(data).hexdigest() == report["file"]["sha256"]

        # ONNX, checked here too: the downloaded file in onnxruntime predicts what the version's Keras model does.
        import onnxruntime

        report = client.registry.export(f"{name}/1", "onnx", sample=trained["val_x"][:7], timeout=300)
        verification = report["verification"]
        assert verification["status"] == "verified" and verification["runtime"].startswith("onnxruntime")
        assert max(verification["max_abs_diff"].values()) <= verification["tolerance"] == 1e-5
        assert report["file"]["name"] == "onnx.zip"
        archive = zipfile.ZipFile(io.BytesIO(client.jobs.artifact(report["job_id"], "onnx.zip")))
        session = onnxruntime.InferenceSession(archive.read(f"{name}/1/model.onnx"))
        served = session.run(None, {session.get_inputs()[0].name: trained["val_x"][:7].astype("float32")})[0]
        np.testing.assert_allclose(served, version.pull().predict(trained["val_x"][:7], verbose=0), atol=1e-5)

        # LiteRT without a sample: rows generated from the model's inputs; the version keeps each verified file.
        report = version.export("litert", timeout=300)
        verification = report["verification"]
        assert verification["status"] == "verified" and verification["tolerance"] == 1e-4
        assert verification["rows"] == 100 and verification["sample"] == {"generated": True, "seed": 0}
        kept = {a["name"] for a in client.registry.get(f"{name}/1")["artifacts"]}
        assert {"tf_saved_model.zip", "onnx.zip", "litert.zip"} <= kept
        with pytest.raises(kerasd.ValidationError):
            client.registry.export(f"{name}/1", "openvino", sample=trained["val_x"][:7])
