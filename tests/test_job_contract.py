"""The job contract (app/core/contract.py) and the one map of statuses (app/core/statuses.py).

Requests stored before the contract existed (no `version`) read through it and run on the worker; a request
newer than the worker fails with a message that says so; every status of the map, `pruned` included, is one
the API lists, refuses to cancel once ended and ends an event stream with its own event.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.core.contract import CONTRACT_VERSION
from tests.seed import fit_request, read_events, seed_arrays, upload_seed, wait_for_job

SHA = "5" * 64
DATASET = "d" * 32


def _array(name: str, shape: list[int], dataset_id: str = DATASET, sha256: str = SHA, fmt: str = "npz",
           dtype: str = "float32") -> dict[str, Any]:
    """An array reference as the API's resolve_ref has always written it."""
    return {"$array": {"dataset_id": dataset_id, "array": name, "sha256": sha256, "format": fmt,
                       "shape": shape, "dtype": dtype}}


COMPILE = {"optimizer": {"module": "keras.optimizers", "registered_name": None, "config": {"learning_rate": 0.001},
                         "class_name": "Adam"},
           "loss": "categorical_crossentropy", "metrics": ["categorical_accuracy"], "loss_weights": None,
           "weighted_metrics": None, "jit_compile": "auto", "steps_per_execution": 1, "run_eagerly": False}
FIT_ARGUMENTS = {"batch_size": 100, "epochs": 3, "validation_split": 0.0, "shuffle": True, "class_weight": None,
                 "initial_epoch": 0, "steps_per_epoch": None, "validation_steps": None, "validation_freq": 1}
# The artifacts create_job stored by default before the legacy model.h5 became opt-in: old requests still run.
DEFAULT_ARTIFACTS = ["weights.h5", "model.keras", "model.h5", "architecture.json", "architecture.yaml", "history.csv"]
EARLY_STOPPING = {"class_name": "EarlyStopping", "config": {
    "monitor": "val_loss", "min_delta": 0.0, "patience": 2, "verbose": 0, "mode": "auto", "baseline": None,
    "restore_best_weights": False, "start_from_epoch": 0}}

# Requests exactly as create_job stored them before the contract (the same keys; no version).
FIT_ON_ARRAYS = {
    "kind": "fit",
    "weights": {"sha256": "1" * 64, "format": "weights.h5", "from": f"job {'a' * 32}", "architecture_sha256": "2" * 64},
    "compile": COMPILE,
    "data": {"x": _array("train_x", [1000, 72]), "y": _array("train_y", [1000, 10]),
             "validation_data": {"x": _array("val_x", [200, 72]), "y": _array("val_y", [200, 10]),
                                 "sample_weight": None}},
    "arguments": {**FIT_ARGUMENTS, "class_weight": {"0": 1.0, "3": 2.5}},
    "callbacks": [EARLY_STOPPING, {"class_name": "ModelCheckpoint", "config": {
        "monitor": "val_loss", "verbose": 0, "save_best_only": False, "save_weights_only": True, "mode": "auto",
        "save_freq": 5, "initial_value_threshold": None}}],
    "seed": 7, "artifacts": DEFAULT_ARTIFACTS, "queue": "kerasd", "priority": 5, "mixed_precision": None,
    "distribution": None, "time_limit_s": None, "tuning": {"enabled": True, "user_set": ["steps_per_execution"]},
    "submitted": {"kind": "fit", "model_id": "b" * 32, "fit": {"epochs": 3}},
}
PIPELINE_OPS = [
    {"op": "shuffle", "batch_size": None, "drop_remainder": False, "buffer_size": 100, "seed": 3,
     "reshuffle_each_iteration": True, "count": None},
    {"op": "batch", "batch_size": 32, "drop_remainder": True, "buffer_size": None, "seed": None,
     "reshuffle_each_iteration": True, "count": None},
    {"op": "repeat", "batch_size": None, "drop_remainder": False, "buffer_size": None, "seed": None,
     "reshuffle_each_iteration": True, "count": 2},
]
# A pipeline's fit arguments leave `shuffle` out (Keras warns about it with a dataset).
FIT_ON_A_PIPELINE = {
    "kind": "fit", "weights": None, "compile": {**COMPILE, "steps_per_execution": 4},
    "data": {"x": {"pipeline": {"x": {"a": _array("xa", [500, 4]), "b": _array("xb", [500, 6], dataset_id="e" * 32)},
                                "y": [_array("y1", [500, 1]), _array("y2", [500, 3])],
                                "sample_weight": _array("w", [500], fmt="npy"), "ops": PIPELINE_OPS}},
             "validation_data": {"pipeline": {"x": _array("vx", [50, 4]), "y": None, "sample_weight": None,
                                              "ops": PIPELINE_OPS[1:2]}}},
    "arguments": {name: value for name, value in FIT_ARGUMENTS.items() if name != "shuffle"} | {"batch_size": None},
    "callbacks": [], "seed": None, "artifacts": [*DEFAULT_ARTIFACTS, "savedmodel.zip"], "queue": "kerasd.gpu2",
    "priority": 9, "mixed_precision": "mixed_bfloat16", "distribution": "mirrored", "time_limit_s": 600,
    "tuning": {"enabled": False, "user_set": []}, "submitted": {"kind": "fit"},
}
EVALUATE = {
    "kind": "evaluate", "weights": {"sha256": "1" * 64, "format": "weights.h5", "from": f"job {'a' * 32}",
                                    "architecture_sha256": None},
    "compile": COMPILE, "data": {"x": _array("val_x", [200, 72]), "y": _array("val_y", [200, 10])},
    "arguments": {"batch_size": 32, "steps": None}, "callbacks": [], "seed": None, "artifacts": [],
    "queue": "kerasd", "priority": 5, "mixed_precision": None, "distribution": None, "time_limit_s": None,
    "tuning": {"enabled": True, "user_set": []}, "submitted": {"kind": "evaluate"},
}
PREDICT_FROM_AN_UPLOADED_MODEL = {
    "kind": "predict", "weights": {"sha256": "3" * 64, "format": "keras", "from": "the model's upload"},
    "compile": None, "data": {"x": {"image": _array("img", [8, 28, 28], fmt="npy", dtype="uint8")}},
    "arguments": {"batch_size": None, "steps": 2}, "callbacks": [], "seed": None, "artifacts": [],
    "queue": "kerasd", "priority": 0, "mixed_precision": None, "distribution": None, "time_limit_s": None,
    "tuning": {"enabled": True, "user_set": []}, "submitted": {"kind": "predict"},
}
# Before execution tuning existed a request had no `tuning`.
FIT_BEFORE_TUNING = {name: value for name, value in FIT_ON_ARRAYS.items() if name != "tuning"}


def _store(request: dict[str, Any], *, tenant_id: str, model_id: str, status: str = "succeeded") -> str:
    from app.core.database import session_scope
    from app.core.tables import Job

    with session_scope() as session:
        job = Job(tenant_id=tenant_id, kind=request["kind"], status=status, model_id=model_id,
                  queue=request["queue"] or "kerasd", priority=request["priority"], request=request)
        session.add(job)
        session.flush()
        return job.id


def _stored_request(job_id: str) -> dict[str, Any]:
    from app.core.database import session_scope
    from app.core.tables import Job

    with session_scope() as session:
        return session.get(Job, job_id).request


@pytest.fixture()
def tenant_and_model(server_env) -> tuple[str, str]:
    from app.core.database import session_scope
    from app.core.tables import ModelSpec
    from app.tenants import service as tenants

    with session_scope() as session:
        tenant = tenants.create_tenant(session, name=f"contract-{uuid.uuid4().hex[:6]}", quotas={})
        model = ModelSpec(tenant_id=tenant.id, name="m", spec={}, keras_config={}, summary={})
        session.add(model)
        session.flush()
        return tenant.id, model.id


def test_requests_stored_before_the_contract_read_through_it(tenant_and_model) -> None:
    from app.core.contract import (
        FitArguments,
        InferenceArguments,
        JobRequest,
        PipelineData,
        StoredArray,
        ValidationArrays,
    )
    from app.jobs.inputs import dataset_ids_of

    tenant_id, model_id = tenant_and_model
    read = {}
    for name, written in {"fit": FIT_ON_ARRAYS, "pipeline": FIT_ON_A_PIPELINE, "evaluate": EVALUATE,
                          "predict": PREDICT_FROM_AN_UPLOADED_MODEL, "untuned": FIT_BEFORE_TUNING}.items():
        stored = _stored_request(_store(written, tenant_id=tenant_id, model_id=model_id))
        assert stored == written and "version" not in stored
        request = JobRequest.model_validate(stored)
        assert request.version == 1
        # What a job gave for Keras's arguments is what Keras gets: nothing added (a default), nothing dropped.
        assert request.model_dump(mode="json")["arguments"] == stored["arguments"]
        # Written again, it reads back the same.
        assert JobRequest.model_validate(request.model_dump(mode="json")) == request
        assert request.submitted == written["submitted"]
        read[name] = request

    fit = read["fit"]
    assert isinstance(fit.arguments, FitArguments) and fit.epochs == 3
    assert fit.arguments.keyword_arguments()["class_weight"] == {0: 1.0, 3: 2.5}
    assert isinstance(fit.data.x, StoredArray) and fit.data.x.resolved.array == "train_x"
    assert isinstance(fit.data.validation_data, ValidationArrays)
    assert fit.data.validation_data.y.resolved.shape == [200, 10]
    assert [array.array for array in fit.data.arrays()] == ["train_x", "train_y", "val_x", "val_y"]
    assert (fit.weights.source, fit.weights.architecture_sha256) == (f"job {'a' * 32}", "2" * 64)
    assert [(c.class_name, c.config.get("save_freq")) for c in fit.callbacks] == [("EarlyStopping", None),
                                                                                 ("ModelCheckpoint", 5)]
    assert fit.tuning.user_set == ["steps_per_execution"] and fit.compile.optimizer["class_name"] == "Adam"
    assert dataset_ids_of(FIT_ON_ARRAYS) == {DATASET}

    pipeline = read["pipeline"]
    assert "shuffle" not in pipeline.arguments.keyword_arguments()
    assert isinstance(pipeline.data.x, PipelineData)
    source = pipeline.data.x.pipeline
    assert [(op.op, op.batch_size, op.buffer_size, op.count) for op in source.ops] == [
        ("shuffle", None, 100, None), ("batch", 32, None, None), ("repeat", None, None, 2)]
    assert source.x["b"].resolved.dataset_id == "e" * 32 and source.y[1].resolved.shape == [500, 3]
    assert source.sample_weight.resolved.format == "npy"
    assert (pipeline.mixed_precision, pipeline.distribution, pipeline.time_limit_s, pipeline.priority) == (
        "mixed_bfloat16", "mirrored", 600, 9)
    assert pipeline.artifacts[-1] == "savedmodel.zip" and pipeline.tuning.enabled is False
    assert dataset_ids_of(FIT_ON_A_PIPELINE) == {DATASET, "e" * 32}

    evaluate = read["evaluate"]
    assert isinstance(evaluate.arguments, InferenceArguments) and evaluate.epochs is None
    assert evaluate.compile.loss == "categorical_crossentropy" and evaluate.weights.architecture_sha256 is None

    predict = read["predict"]
    assert predict.compile is None and predict.weights.format == "keras"
    assert predict.data.x["image"].resolved.dtype == "uint8"
    assert predict.arguments.keyword_arguments() == {"batch_size": None, "steps": 2}

    assert read["untuned"].tuning is None


def test_a_request_the_contract_does_not_hold_is_refused_by_what_is_wrong() -> None:
    from pydantic import ValidationError

    from app.core.contract import JobRequest

    cases = {
        "upgrade the worker": {**EVALUATE, "version": CONTRACT_VERSION + 1, "added_later": {}},
        "arguments of a predict job": {**PREDICT_FROM_AN_UPLOADED_MODEL, "arguments": FIT_ARGUMENTS},
        "evaluate jobs need a compile document": {**EVALUATE, "compile": None},
        "Extra inputs are not permitted": {**EVALUATE, "arguments": {"batch_size": 32, "step": 1}},
        # Only an export job may come without x (its worker generates rows from the model's inputs).
        "a predict job needs its x": {**PREDICT_FROM_AN_UPLOADED_MODEL, "data": {}},
    }
    for expected, request in cases.items():
        with pytest.raises(ValidationError, match=expected):
            JobRequest.model_validate(request)


@pytest.fixture(scope="module")
def ids(api_url) -> dict[str, str]:
    return upload_seed(api_url, seed_arrays())


def _enqueue(job_id: str, queue: str) -> None:
    from app.core.queue import enqueue_job

    enqueue_job(job_id, queue=queue, priority=5)


def test_a_job_stored_before_the_contract_runs_as_it_did(client, ids) -> None:
    """A request in the form stored before the contract (no version), put in SQL and queued, trains exactly as
    the same job submitted today."""
    from app.core.database import session_scope
    from app.core.tables import Dataset, Job

    submitted = fit_request(ids["model"], ids["dataset"], epochs=2)
    today = client.post("/v1/jobs", json=submitted).json()
    today = wait_for_job(client, today["id"])
    assert today["status"] == "succeeded", today["error"]
    with session_scope() as session:
        job = session.get(Job, today["id"])
        tenant_id, queue = job.tenant_id, job.queue
        # The compile document below is the one create_job has always made of this job's compile arguments.
        assert job.request["compile"] == COMPILE
        dataset = session.get(Dataset, ids["dataset"])
        arrays = {a["name"]: a for a in dataset.arrays}

    def array(name: str) -> dict[str, Any]:
        return _array(name, arrays[name]["shape"], dataset_id=dataset.id, sha256=dataset.blob_sha256,
                      fmt=dataset.format, dtype=arrays[name]["dtype"])

    before = {
        "kind": "fit", "weights": None, "compile": COMPILE,
        "data": {"x": array("train_x"), "y": array("train_y"),
                 "validation_data": {"x": array("val_x"), "y": array("val_y"), "sample_weight": None}},
        "arguments": {**FIT_ARGUMENTS, "epochs": 2}, "callbacks": [], "seed": 7, "artifacts": DEFAULT_ARTIFACTS,
        "queue": queue, "priority": 5, "mixed_precision": None, "distribution": None, "time_limit_s": None,
        "tuning": {"enabled": True, "user_set": []}, "submitted": today["request"],
    }
    job_id = _store(before, tenant_id=tenant_id, model_id=ids["model"], status="queued")
    _enqueue(job_id, queue)
    then = wait_for_job(client, job_id)
    assert then["status"] == "succeeded", then["error"]
    assert then["history"] == today["history"] and len(then["history"]["loss"]) == 2
    assert then["request"] == today["request"]
    assert [event["type"] for event in read_events(client, job_id)][-1] == "finished"


def test_a_request_newer_than_the_worker_fails_saying_so(client, ids) -> None:
    from app.core.database import session_scope
    from app.core.tables import Job

    created = client.post("/v1/jobs", json=fit_request(ids["model"], ids["dataset"], epochs=1)).json()
    assert wait_for_job(client, created["id"])["status"] == "succeeded"
    with session_scope() as session:
        job = session.get(Job, created["id"])
        newer = {**copy.deepcopy(job.request), "version": CONTRACT_VERSION + 1,
                 "added_later": {"what": "a worker cannot know"}}
        tenant_id, queue = job.tenant_id, job.queue
    job_id = _store(newer, tenant_id=tenant_id, model_id=ids["model"], status="queued")
    _enqueue(job_id, queue)
    failed = wait_for_job(client, job_id)
    assert failed["status"] == "failed"
    message = failed["error"]["message"]
    assert f"version {CONTRACT_VERSION + 1}" in message and "upgrade the worker" in message


def test_every_status_of_the_map_is_listed_and_pruned_is_an_end(client, ids) -> None:
    from app.core.database import session_scope
    from app.core.statuses import JOB_STATUSES
    from app.core.tables import Job, utcnow

    created = client.post("/v1/jobs", json=fit_request(ids["model"], ids["dataset"], epochs=1)).json()
    assert wait_for_job(client, created["id"])["status"] == "succeeded"
    with session_scope() as session:
        job = session.get(Job, created["id"])
        pruned = Job(tenant_id=job.tenant_id, kind="fit", status="pruned", model_id=job.model_id, queue=job.queue,
                     priority=5, request=copy.deepcopy(job.request), attempt=1, started_at=utcnow(),
                     finished_at=utcnow(), result={"history": {}, "epochs_run": 0})
        session.add(pruned)
        session.flush()
        pruned_id = pruned.id

    for status in JOB_STATUSES:
        page = client.get("/v1/jobs", params={"status": status, "limit": 200})
        assert page.status_code == 200, (status, page.text)
        assert {item["status"] for item in page.json()["items"]} <= {status}
    assert [item["id"] for item in client.get("/v1/jobs", params={"status": "pruned"}).json()["items"]] == [pruned_id]
    unknown = client.get("/v1/jobs", params={"status": "paused"})
    assert unknown.status_code == 422 and "pruned" in unknown.text

    cancel = client.post(f"/v1/jobs/{pruned_id}/cancel")
    assert cancel.status_code == 409 and "already ended pruned" in cancel.json()["detail"]
    # No stream in Redis: the end is replayed from SQL, as the map names it, and the stream ends there.
    replayed = read_events(client, pruned_id, timeout_s=60)
    assert [(event["type"], event["data"]["status"]) for event in replayed] == [("pruned", "pruned")]
    assert client.delete(f"/v1/jobs/{pruned_id}").status_code == 204


def test_the_api_docs_list_the_statuses_of_the_map() -> None:
    from app.core.statuses import STATUSES_MARKDOWN

    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    assert STATUSES_MARKDOWN in docs


def test_workers_read_the_contract_not_the_api_request_schemas() -> None:
    code = ("import sys\nimport workers.runner\n"
            "print(sorted(m for m in sys.modules if m == 'app.jobs' or m.startswith('app.jobs.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_the_sdk_and_the_dashboard_know_every_status_of_the_map() -> None:
    # Their own copies (the SDK imports nothing of the server; the dashboard is plain JavaScript).
    import re

    import kerasd.events
    import kerasd.resources
    from app.core.statuses import JOB_STATUSES, TERMINAL_EVENTS, TERMINAL_STATUSES

    assert kerasd.resources.JOB_STATUSES == JOB_STATUSES
    assert set(kerasd.resources.TERMINAL_STATUSES) == set(TERMINAL_STATUSES)
    assert kerasd.events.TERMINAL_TYPES == frozenset(TERMINAL_EVENTS)
    script = (Path(__file__).resolve().parent.parent / "app" / "system" / "static" / "dashboard.js").read_text()
    terminal = re.search(r"const TERMINAL_STATUSES = new Set\(\[(.*?)\]\)", script).group(1)
    assert {name.strip(' "') for name in terminal.split(",")} == set(TERMINAL_STATUSES)
    assert all(f"<option>{name}</option>" in script for name in JOB_STATUSES)
