"""The model registry on real processes: versions made from jobs a real worker trained, with their lineage; aliases
moved; predict, evaluate and fit jobs that name a version (`name/2`, `name@champion`); a version that outlives its
job and a blob collection; another tenant's view (nothing); bad references (a 422 or 404 that says what is wrong)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import numpy as np
import pytest

from tests.seed import SEED_MODEL, fit_request, npz_bytes, ref, upload, wait_for_job
from tests.tenancy import keyed_client, make_tenant
from tests.test_bad_input import assert_problem


@pytest.fixture(scope="module")
def tenants(keyed_api) -> dict[str, httpx.Client]:
    url, _process = keyed_api
    clients = {name: keyed_client(url, make_tenant(f"registry-{name}")[1]) for name in ("owner", "other")}
    # /version names the workers only to admin keys.
    clients["admin"] = keyed_client(url, make_tenant("registry-admin", role="admin")[1])
    yield clients
    for http in clients.values():
        http.close()


@pytest.fixture(scope="module")
def owner(tenants) -> httpx.Client:
    return tenants["owner"]


@pytest.fixture(scope="module")
def seed(owner) -> dict[str, Any]:
    """A small dataset (200 training rows) and the seed's model, of the owner."""
    rng = np.random.default_rng(3)
    arrays = {"train_x": rng.random((200, 72), dtype="float32"),
              "train_y": np.eye(10, dtype="float32")[rng.integers(0, 10, 200)],
              "val_x": rng.random((40, 72), dtype="float32"),
              "val_y": np.eye(10, dtype="float32")[rng.integers(0, 10, 40)]}
    dataset = upload(owner, "registry.npz", npz_bytes(**arrays)).json()
    model = owner.post("/v1/models", json=SEED_MODEL).json()
    return {"dataset": dataset, "model": model["id"]}


def trained(http: httpx.Client, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A fit job of one epoch on `data` (the seed fixture's model and dataset), finished; `fields` override the
    request's."""
    body = {**fit_request(data["model"], data["dataset"]["id"], epochs=1, batch_size=50), **fields}
    created = http.post("/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    job = wait_for_job(http, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return job


def predicted(http: httpx.Client, seed: dict[str, Any], **source: Any) -> list[list[float]]:
    """The predictions (inline) of a predict job on the validation rows from `source`."""
    body = {"kind": "predict", **source, "predict": {"x": ref(seed["dataset"]["id"], "val_x")}}
    created = http.post("/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    job = wait_for_job(http, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return job["result"]["predictions"]


def registered(http: httpx.Client, name: str | None = None) -> str:
    name = name or f"reg-{uuid.uuid4().hex[:8]}"
    created = http.post("/v1/registry", json={"name": name, "description": "tests"})
    assert created.status_code == 201, created.text
    return name


def add_version(http: httpx.Client, name: str, job_id: str, description: str = "") -> dict[str, Any]:
    made = http.post(f"/v1/registry/{name}/versions", json={"job_id": job_id, "description": description})
    assert made.status_code == 201, made.text
    return made.json()


@pytest.fixture(scope="module")
def two_versions(owner, seed) -> dict[str, Any]:
    """A registered model with versions 1 and 2 from two fit jobs (different seeds: different weights)."""
    name = registered(owner)
    first, second = trained(owner, seed, seed=1, name="first", tags=["registry"]), trained(owner, seed, seed=2)
    return {"name": name, "jobs": [first, second],
            "versions": [add_version(owner, name, first["id"], "the first"), add_version(owner, name, second["id"])]}


def test_versions_are_numbered_and_keep_the_jobs_lineage_and_artifacts(owner, seed, two_versions, tenants):
    name, (job, second_job) = two_versions["name"], two_versions["jobs"]
    first, second = two_versions["versions"]
    assert (first["version"], second["version"]) == (1, 2)
    assert first["reference"] == f"{name}/1" and first["job_id"] == job["id"] and first["description"] == "the first"
    assert first["model_id"] == seed["model"] and first["aliases"] == []

    lineage = first["lineage"]
    assert lineage["job"]["id"] == job["id"] and lineage["job"]["attempts"] == job["attempt"] == 1
    assert lineage["job"]["name"] == "first" and lineage["job"]["tags"] == ["registry"]
    assert lineage["job"]["sweep_id"] is None and lineage["job"]["finished_at"]
    assert lineage["model"] == {"id": seed["model"], "name": SEED_MODEL["name"]}
    assert lineage["seed"] == 1 and lineage["epochs_run"] == 1
    assert lineage["params"] == job["params"] and lineage["params"]["fit.epochs"] == 1
    assert lineage["metrics"] == job["metrics"] and "val_loss" in lineage["metrics"]
    assert lineage["compile"]["loss"] is not None and lineage["started_from"] is None
    [dataset] = lineage["datasets"]
    assert dataset["sha256"] == seed["dataset"]["sha256"] and dataset["dataset_id"] == seed["dataset"]["id"]
    assert {(a["argument"], a["array"], tuple(a["shape"]), a["dtype"]) for a in dataset["arrays"]} == {
        ("x", "train_x", (200, 72), "float32"), ("y", "train_y", (200, 10), "float32"),
        ("validation_data.x", "val_x", (40, 72), "float32"), ("validation_data.y", "val_y", (40, 10), "float32")}
    # What trained it, as the worker recorded it in the job's result and announces itself.
    workers = tenants["admin"].get("/version").json()["workers"]
    trained_with = lineage["trained_with"]
    assert trained_with == job["result"]["trained_with"]
    assert trained_with["worker"] in {worker["name"] for worker in workers}
    assert trained_with["kerasd"] == owner.get("/version").json()["kerasd"]
    announced = next(worker for worker in workers if worker["name"] == trained_with["worker"])
    assert (trained_with["keras"], trained_with["backend"]) == (announced["keras"], announced["backend"])
    assert trained_with["tensorflow"] == announced["tensorflow"] and trained_with["python"]

    # The version's files are the job's: the same bytes under the same sha256.
    job_files = {a["name"]: a["sha256"] for a in owner.get(f"/v1/jobs/{job['id']}/artifacts").json()}
    version_files = {a["name"]: a["sha256"] for a in first["artifacts"]}
    assert {"weights.h5", "model.keras", "architecture.json"} <= set(version_files)
    assert all(job_files[name] == sha for name, sha in version_files.items())
    assert second["lineage"]["seed"] == 2 and second["lineage"]["job"]["id"] == second_job["id"]

    shown = owner.get(f"/v1/registry/{name}").json()
    assert shown["latest_version"] == 2 and [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["versions"][0] == first
    assert owner.get(f"/v1/registry/{name}/versions/1").json() == first
    assert owner.get(f"/v1/registry/{name}/versions/latest").json()["version"] == 2
    assert name in [model["name"] for model in owner.get("/v1/registry").json()]


def test_an_alias_moves_and_a_predict_job_on_it_predicts_what_its_versions_job_predicts(owner, seed, two_versions):
    name, (first_job, second_job) = two_versions["name"], two_versions["jobs"]
    made = owner.put(f"/v1/registry/{name}/aliases/champion", json={"version": 1})
    assert made.status_code == 200, made.text
    assert made.json()["version"] == 1 and made.json()["previous_version"] is None
    on_alias = predicted(owner, seed, model_version=f"{name}@champion")
    assert on_alias == predicted(owner, seed, source_job_id=first_job["id"])

    moved = owner.put(f"/v1/registry/{name}/aliases/champion", json={"version": 2}).json()
    assert (moved["version"], moved["previous_version"]) == (2, 1)
    assert owner.get(f"/v1/registry/{name}/versions/champion").json()["version"] == 2
    assert owner.get(f"/v1/registry/{name}").json()["aliases"] == {"champion": 2}
    after = predicted(owner, seed, model_version=f"{name}@champion")
    assert after == predicted(owner, seed, source_job_id=second_job["id"])
    assert not np.allclose(np.asarray(after), np.asarray(on_alias)), "the two versions' weights differ"
    assert predicted(owner, seed, model_version=f"{name}/1") == on_alias

    assert owner.delete(f"/v1/registry/{name}/aliases/champion").status_code == 204
    assert owner.get(f"/v1/registry/{name}").json()["aliases"] == {}
    assert_problem(owner.get(f"/v1/registry/{name}/versions/champion"), 404, "no alias 'champion'")


def test_evaluate_and_fine_tuning_jobs_start_from_a_version(owner, seed, two_versions):
    name, (first_job, _second) = two_versions["name"], two_versions["jobs"]
    # An evaluate job compiles as the version's job did when it gives no compile of its own.
    body = {"kind": "evaluate", "model_version": f"{name}/1",
            "evaluate": {"x": ref(seed["dataset"]["id"], "val_x"), "y": ref(seed["dataset"]["id"], "val_y")}}
    on_version = wait_for_job(owner, owner.post("/v1/jobs", json=body).json()["id"])
    on_job = wait_for_job(owner, owner.post("/v1/jobs", json={**body, "model_version": None,
                                                               "source_job_id": first_job["id"]}).json()["id"])
    assert on_version["status"] == on_job["status"] == "succeeded", on_version["error"]
    assert on_version["result"]["evaluation"] == on_job["result"]["evaluation"]

    # Fine-tuning: a fit job whose initial weights are the version's; its own version records where it started.
    tuned = trained(owner, seed, initial_weights={"model_version": f"{name}@latest"})
    version = add_version(owner, name, tuned["id"])
    assert version["version"] == 3
    assert version["lineage"]["started_from"].startswith(f"registered model version {name}/2 ({name}@latest)")


def test_a_version_outlives_its_job_and_the_blob_collection(owner, seed):
    from app.core.blob_gc import collect_blobs

    name = registered(owner)
    # A model spec of its own: once the job is deleted, only the version uses it.
    own = {**seed, "model": owner.post("/v1/models", json=SEED_MODEL).json()["id"]}
    job = trained(owner, own, seed=11)
    version = add_version(owner, name, job["id"])
    files = {a["name"]: a for a in version["artifacts"]}
    assert owner.delete(f"/v1/jobs/{job['id']}").status_code == 204
    collect_blobs(grace_s=0)

    for artifact in ("weights.h5", "model.keras", "architecture.json"):
        response = owner.get(files[artifact]["url"])
        assert response.status_code == 200, response.text
        sha256 = hashlib.sha256(response.content).hexdigest()
        assert sha256 == files[artifact]["sha256"] == response.headers["etag"].strip('"')
        assert len(response.content) == files[artifact]["size_bytes"]
    assert owner.get(f"/v1/registry/{name}/versions/1").json()["lineage"]["job"]["id"] == job["id"]
    # The model spec a version was made from stays while the version does (no job uses it now).
    assert_problem(owner.delete(f"/v1/models/{own['model']}"), 409, f"{name}/1")
    # Still a model to start from: the job is gone, the version's own blobs are not.
    assert predicted(owner, seed, model_version=f"{name}/1")

    # Deleting the registered model frees the bytes it alone held: the version was what kept them.
    assert owner.delete(f"/v1/registry/{name}").status_code == 204
    collect_blobs(grace_s=0)
    assert_problem(owner.get(f"/v1/registry/{name}"), 404)
    from tests.test_blob_gc import stored

    assert stored(files["weights.h5"]["sha256"]) == (0, 0)


def test_another_tenant_finds_nothing_of_the_registry(tenants, seed, two_versions):
    owner, other = tenants["owner"], tenants["other"]
    name, job = two_versions["name"], two_versions["jobs"][0]
    for path in (f"/v1/registry/{name}", f"/v1/registry/{name}/versions", f"/v1/registry/{name}/versions/1",
                 f"/v1/registry/{name}/versions/1/artifacts", f"/v1/registry/{name}/versions/1/artifacts/weights.h5"):
        assert_problem(other.get(path), 404, name)
    assert name not in [model["name"] for model in other.get("/v1/registry").json()]
    assert_problem(other.post(f"/v1/registry/{name}/versions", json={"job_id": job["id"]}), 404)
    assert_problem(other.put(f"/v1/registry/{name}/aliases/mine", json={"version": 1}), 404)
    assert_problem(other.delete(f"/v1/registry/{name}/aliases/champion"), 404)
    assert_problem(other.delete(f"/v1/registry/{name}"), 404)
    # The same name is free for the other tenant, and the owner's job is not theirs to register.
    registered(other, name)
    assert_problem(other.post(f"/v1/registry/{name}/versions", json={"job_id": job["id"]}), 422, "no job")
    dataset = upload(other, "other.npz", npz_bytes(x=np.zeros((4, 72), dtype="float32"))).json()
    body = {"kind": "predict", "model_version": f"{name}/1", "predict": {"x": ref(dataset["id"], "x")}}
    assert_problem(other.post("/v1/jobs", json=body), 422, "has no version 1")
    assert owner.get(f"/v1/registry/{name}/versions/1").status_code == 200


def test_bad_references_and_registrations_say_what_is_wrong(owner, seed, two_versions):
    name, job = two_versions["name"], two_versions["jobs"][0]
    predict = {"kind": "predict", "predict": {"x": ref(seed["dataset"]["id"], "val_x")}}
    for reference, status, needle in ((f"{name}", 422, "model_version"), (f"{name}/x", 422, "model_version"),
                                      (f"{name}/99", 422, "has no version 99"),
                                      (f"{name}@nobody", 422, "has no alias 'nobody'"),
                                      ("ghost/1", 422, "no registered model named 'ghost'")):
        assert_problem(owner.post("/v1/jobs", json={**predict, "model_version": reference}), status, needle)
    assert_problem(owner.post("/v1/jobs", json={**predict, "model_version": f"{name}/1",
                                                "source_job_id": job["id"]}), 422, "not both")
    fit = fit_request(seed["model"], seed["dataset"]["id"], epochs=1)
    assert_problem(owner.post("/v1/jobs", json={**fit, "initial_weights": {"model_version": "ghost@x"}}), 422,
                   "initial_weights.model_version")

    assert_problem(owner.post("/v1/registry", json={"name": name}), 409, "already have")
    assert_problem(owner.post("/v1/registry", json={"name": "a/b"}), 422)
    assert_problem(owner.post(f"/v1/registry/{name}/versions", json={"job_id": "0" * 32}), 422, "no job")
    assert_problem(owner.post("/v1/registry/ghost/versions", json={"job_id": job["id"]}), 404, "'ghost'")
    # A job that did not succeed (cancelled while queued, or stopped at its next batch) is not registrable.
    cancelled = owner.post("/v1/jobs", json={**fit, "fit": {**fit["fit"], "epochs": 1000}}).json()
    owner.post(f"/v1/jobs/{cancelled['id']}/cancel")
    assert wait_for_job(owner, cancelled["id"])["status"] == "cancelled"
    assert_problem(owner.post(f"/v1/registry/{name}/versions", json={"job_id": cancelled["id"]}), 409, "cancelled")
    evaluated = owner.post("/v1/jobs", json={"kind": "evaluate", "source_job_id": job["id"], "evaluate": {
        "x": ref(seed["dataset"]["id"], "val_x"), "y": ref(seed["dataset"]["id"], "val_y")}}).json()
    assert wait_for_job(owner, evaluated["id"])["status"] == "succeeded"
    assert_problem(owner.post(f"/v1/registry/{name}/versions", json={"job_id": evaluated["id"]}), 409,
                   "is an evaluate job: a version is made from a fit job")

    assert_problem(owner.put(f"/v1/registry/{name}/aliases/latest", json={"version": 1}), 422, "newest")
    assert_problem(owner.put(f"/v1/registry/{name}/aliases/best", json={"version": 99}), 422, "no version 99")
    assert_problem(owner.put(f"/v1/registry/{name}/aliases/best", json={"version": 0}), 422)
    assert_problem(owner.get(f"/v1/registry/{name}/versions/99"), 404, "has no version 99")
    assert_problem(owner.get(f"/v1/registry/{name}/versions/1/artifacts/secret.txt"), 404, "weights.h5")
    assert_problem(owner.delete(f"/v1/registry/{name}/aliases/nobody"), 404, "no alias")


def test_a_registered_model_is_not_deleted_under_a_job_that_starts_from_it(owner, seed, two_versions):
    name = two_versions["name"]
    long = {**fit_request(seed["model"], seed["dataset"]["id"], epochs=10_000, batch_size=50),
            "initial_weights": {"model_version": f"{name}/1"}}
    created = owner.post("/v1/jobs", json=long)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert created.json()["status"] in ("queued", "running")
    assert_problem(owner.delete(f"/v1/registry/{name}"), 409, job_id)
    owner.post(f"/v1/jobs/{job_id}/cancel")
    assert wait_for_job(owner, job_id)["status"] == "cancelled"
    assert owner.get(f"/v1/registry/{name}").status_code == 200


def test_concurrent_registrations_take_distinct_numbers(owner, two_versions):
    from concurrent.futures import ThreadPoolExecutor

    name = registered(owner)
    job_id = two_versions["jobs"][0]["id"]
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: owner.post(f"/v1/registry/{name}/versions", json={"job_id": job_id}),
                             range(8)))
    assert [response.status_code for response in made] == [201] * 8
    assert sorted(response.json()["version"] for response in made) == list(range(1, 9))
    assert owner.get(f"/v1/registry/{name}").json()["latest_version"] == 8


def test_an_export_is_verified_by_tensorflows_own_loader_and_its_file_predicts_as_keras(tenants, seed, two_versions,
                                                                                       tmp_path):
    import zipfile

    import tensorflow as tf

    owner, other = tenants["owner"], tenants["other"]
    name, dataset = two_versions["name"], seed["dataset"]["id"]
    body = {"format": "tf_saved_model", "sample": ref(dataset, "val_x")}
    made = owner.post(f"/v1/registry/{name}/versions/1/exports", json=body)
    assert made.status_code == 201, made.text
    export = made.json()
    assert export["reference"] == f"{name}/1" and export["status"] in ("queued", "running", "succeeded")
    job = wait_for_job(owner, export["job_id"])
    assert job["status"] == "succeeded" and job["kind"] == "export", job["error"]

    [listed] = owner.get(f"/v1/registry/{name}/versions/1/exports").json()
    verification = listed["verification"]
    assert listed["job_id"] == export["job_id"] and listed["status"] == "succeeded"
    assert verification["status"] == "verified" and verification["tolerance"] == 1e-5
    assert verification["rows"] == 40 and verification["directory"] == f"{name}/1"
    assert all(0 <= diff <= 1e-5 for diff in verification["max_abs_diff"].values()), verification

    # The file, checked here too: TensorFlow Serving's layout, loaded by TensorFlow, predicting what Keras predicts.
    download = owner.get(listed["file"]["url"])
    assert hashlib.sha256(download.content).hexdigest() == listed["file"]["sha256"]
    archive = tmp_path / "export.zip"
    archive.write_bytes(download.content)
    zipfile.ZipFile(archive).extractall(tmp_path / "serving")
    assert (tmp_path / "serving" / name / "1" / "saved_model.pb").exists()
    loaded = tf.saved_model.load(str(tmp_path / "serving" / name / "1"))
    val_x = np.load(__import__("io").BytesIO(owner.get(f"/v1/datasets/{dataset}/content").content))["val_x"]
    served = loaded.serve(val_x).numpy()
    np.testing.assert_allclose(served, np.asarray(predicted(owner, seed, model_version=f"{name}/1")), atol=1e-5)

    # A verified export is the version's file too: it outlives its job and the blob collection.
    from app.core.blob_gc import collect_blobs

    kept = {a["name"]: a for a in owner.get(f"/v1/registry/{name}/versions/1").json()["artifacts"]}
    assert kept["tf_saved_model.zip"]["sha256"] == listed["file"]["sha256"]
    assert owner.delete(f"/v1/jobs/{export['job_id']}").status_code == 204
    collect_blobs(grace_s=0)
    [gone] = owner.get(f"/v1/registry/{name}/versions/1/exports").json()
    assert gone["status"] == "deleted" and gone["file"] is None
    assert owner.get(kept["tf_saved_model.zip"]["url"]).content == download.content

    assert_problem(owner.post(f"/v1/registry/{name}/versions/1/exports", json={**body, "format": "openvino"}), 422)
    assert_problem(owner.post(f"/v1/registry/{name}/versions/1/exports",
                              json={**body, "sample": ref(dataset, "train_y")}), 422, "sample")
    assert_problem(owner.post(f"/v1/registry/{name}/versions/9/exports", json=body), 404, "no version 9")
    assert_problem(other.post(f"/v1/registry/{name}/versions/1/exports", json=body), 404)
    assert_problem(other.get(f"/v1/registry/{name}/versions/1/exports"), 404)
