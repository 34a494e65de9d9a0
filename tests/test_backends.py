"""Jobs name their Keras backend: queues by backend, refusals at submit, the waiting job's message, and a stack whose
API and worker both run Keras on JAX with TensorFlow unimportable, through the tutorial's examples and the SDK."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from app.core.contract import BACKEND_VERSION, JobRequest
from app.core.errors import Problem
from app.core.queue import queue_for, queues_served
from app.jobs.feasibility import check_backend, waiting_message
from app.jobs.schemas import JobCreate
from tests.seed import fit_request, ref, wait_for_job
from tests.test_examples import EXPECTED, run_example
from tests.test_fault_tolerance import Stack, seed_ids, wait_for
from tests.test_tuning import assert_chosen_for_the_measured_step

NO_TENSORFLOW = str(Path(__file__).parent / "no_tensorflow")
# Tutorial sections that need no TensorFlow on the server (§3.3's pipelines and §4.4's TensorBoard do), a few for
# CI time: arrays with validation data, the functional API with two outputs, weights saved and loaded.
JAX_SECTIONS = ("s3_2_numpy_fit.py", "s4_1_functional.py", "s5_1_save_weights.py")


def _job(**fields) -> JobCreate:
    return JobCreate.model_validate(
        {
            "kind": "fit",
            "model_id": "0" * 32,
            "compile": {"optimizer": "sgd", "loss": "mse"},
            "fit": {"x": ref("d" * 32, "x"), "y": ref("d" * 32, "y")},
            **fields,
        }
    )


def test_each_backend_has_its_own_queues_and_tensorflow_keeps_the_old_names() -> None:
    assert queue_for("kerasd", 0) == queue_for("kerasd", 0, "tensorflow") == "kerasd"
    assert queue_for("kerasd", 1, "tensorflow") == "kerasd.gpu"
    assert queue_for("kerasd", 0, "jax") == "kerasd.jax"
    assert queues_served("kerasd", 2, "torch") == ["kerasd.torch.gpu2", "kerasd.torch.gpu", "kerasd.torch"]


def test_a_backend_never_seen_is_refused_with_the_backends_that_were() -> None:
    # Before any worker was seen, a job waits for one whatever its backend.
    check_backend(_job(backend="torch"), backend="torch", seen=dict)
    check_backend(_job(backend="jax"), backend="jax", seen=lambda: {"jax": False})
    with pytest.raises(Problem) as refused:
        check_backend(_job(backend="torch"), backend="torch", seen=lambda: {"jax": False, "tensorflow": True})
    assert refused.value.status == 422 and refused.value.extra == {
        "field": "backend",
        "backends": ["jax", "tensorflow"],
    }
    assert "kerasd worker --backend torch" in refused.value.detail
    # A job naming none is held to the server's default backend, and says so.
    with pytest.raises(Problem) as default:
        check_backend(_job(), backend="tensorflow", seen=lambda: {"jax": False})
    assert "server's default backend" in default.value.detail and default.value.extra == {"backends": ["jax"]}


def test_what_needs_tensorflow_is_refused_on_a_backend_without_it() -> None:
    pipeline = _job(
        backend="jax",
        fit={
            "x": {
                "pipeline": {
                    "x": ref("d" * 32, "x"),
                    "y": ref("d" * 32, "y"),
                    "ops": [{"op": "batch", "batch_size": 8}],
                }
            }
        },
        callbacks=[{"class_name": "TensorBoard", "config": {}}],
        artifacts=["savedmodel.zip"],
    )
    with pytest.raises(Problem) as refused:
        check_backend(pipeline, backend="jax", seen=lambda: {"jax": False, "tensorflow": True})
    detail = refused.value.detail
    assert refused.value.title == "Backend Cannot Run Job"
    assert "fit.x (a tf.data pipeline)" in detail and "savedmodel.zip" in detail and "callbacks[0]" in detail
    assert "(tensorflow)" in detail  # where it can run
    # The same job on JAX workers that have TensorFlow beside them, or on TensorFlow, is accepted.
    check_backend(pipeline, backend="jax", seen=lambda: {"jax": True})
    check_backend(
        pipeline.model_copy(update={"backend": "tensorflow"}), backend="tensorflow", seen=lambda: {"tensorflow": True}
    )
    with pytest.raises(Problem, match="MirroredStrategy"):
        check_backend(_job(backend="jax", resources={"gpus": 2}), backend="jax", seen=dict)


def test_a_job_naming_its_backend_is_contract_version_3_and_older_requests_still_read() -> None:
    stored = {
        "kind": "predict",
        "data": {
            "x": {
                "$array": {
                    "dataset_id": "d",
                    "array": "x",
                    "sha256": "0",
                    "format": "npy",
                    "shape": [1, 1],
                    "dtype": "float32",
                }
            }
        },
        "arguments": {},
    }
    assert JobRequest.model_validate(stored).backend is None
    assert JobRequest.model_validate({**stored, "version": BACKEND_VERSION, "backend": "jax"}).backend == "jax"
    with pytest.raises(ValueError, match="contract version 3"):
        JobRequest.model_validate({**stored, "version": 2, "backend": "jax"})


def test_the_waiting_message_names_what_no_live_worker_runs() -> None:
    workers = [
        {"queue": "q", "backend": "tensorflow", "gpus": 0, "queues": ["q"]},
        {"queue": "other", "backend": "jax", "gpus": 0, "queues": ["other.jax"]},
    ]
    assert waiting_message({}, workers, queue_base="q", default_backend="tensorflow") is None
    message = waiting_message(
        {"backend": "jax", "resources": {"gpus": 1}}, workers, queue_base="q", default_backend="tensorflow"
    )
    assert "no live worker runs the jax backend with 1 GPU(s)" in message
    assert "the live workers run tensorflow with 0 GPU(s)" in message and "--backend jax" in message


def _weights(content: bytes) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(content), "r") as h5:
        h5.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


def test_a_stack_on_jax_without_tensorflow(server_env, logs_dir, tmp_path: Path) -> None:
    """API and worker on KERAS_BACKEND=jax, TensorFlow unimportable in both: the tutorial's examples that need no
    TensorFlow, steps_per_execution tuned, seeded jobs identical tuned or not, a sweep's trial on JAX, and a backend
    no worker runs refused at submit (a job's and a sweep's)."""
    env = {
        **server_env,
        "KERASD_QUEUE": f"kerasd-jax-{uuid.uuid4().hex[:8]}",
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": NO_TENSORFLOW,
        "JAX_PLATFORMS": "cpu",
    }
    stack = Stack(env, logs_dir)
    try:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            ids = seed_ids(client)
            # Before any worker: the job is accepted and says why it waits.
            queued = client.post("/v1/jobs", json=fit_request(ids["model"], ids["dataset"], epochs=1) | {"seed": 3})
            assert queued.status_code == 201, queued.text
            assert "no live worker runs the jax backend" in queued.json()["status_message"]
            assert "no worker is alive" in client.get(f"/v1/jobs/{queued.json()['id']}").json()["status_message"]

            worker = stack.worker()
            first = wait_for_job(client, queued.json()["id"])
            assert first["status"] == "succeeded", first["error"]
            assert first["status_message"] is None
            assert first["result"]["trained_with"]["backend"] == "jax"
            assert first["result"]["trained_with"]["tensorflow"] is None
            assert first["result"]["trained_with"]["device"] == "cpu"
            # Execution tuning on JAX: steps_per_execution chosen for the step it measured (an epoch is 10 steps),
            # jit_compile left as Keras has it (jax.jit), and the record says so.
            record = first["result"]["tuning"]
            assert record["tuned"] == ["steps_per_execution"] and record["jit_compile"] is True, record
            assert 1 <= assert_chosen_for_the_measured_step(record, steps_per_epoch=10, must_divide=[]) <= 10
            assert any("jit_compile stays True" in note and "jax.jit" in note for note in record["notes"]), record

            version = wait_for(lambda: (v := client.get("/version").json())["workers"] and v)
            assert version["tensorflow"] is None and version["backend"] == "jax"
            assert version["default_backend"] == "jax" and version["backends"] == ["jax"]
            assert [w["backend"] for w in version["workers"] if w["queue"] == env["KERASD_QUEUE"]] == ["jax"]

            # The same seeded job again, naming its backend, and once more untuned (Keras's own one step per
            # execution): the same weights, bit for bit, and the same history.
            again, untuned = (
                wait_for_job(
                    client,
                    client.post(
                        "/v1/jobs",
                        json=fit_request(ids["model"], ids["dataset"], epochs=1)
                        | {"seed": 3, "backend": "jax", **extra},
                    ).json()["id"],
                )
                for extra in ({}, {"tuning": False})
            )
            assert again["status"] == untuned["status"] == "succeeded", (again["error"], untuned["error"])
            assert untuned["result"]["tuning"] == {"enabled": False}
            assert first["history"] == again["history"] == untuned["history"]
            weights = [
                _weights(client.get(f"/v1/jobs/{job['id']}/artifacts/weights.h5").content)
                for job in (first, again, untuned)
            ]
            assert weights[0] and all(other.keys() == weights[0].keys() for other in weights[1:])
            assert all(np.array_equal(weights[0][name], other[name]) for other in weights[1:] for name in weights[0])

            for backend in ("torch", "tensorflow"):
                refused = client.post("/v1/jobs", json=fit_request(ids["model"], ids["dataset"]) | {"backend": backend})
                assert refused.status_code == 422, refused.text
                assert refused.json()["backends"] == ["jax"] and refused.json()["field"] == "backend"
            # A sweep's trials are jobs of its base job's backend: refused at submit for one no worker runs, with
            # the backends seen, and on this one run by the JAX worker.
            sweep = {
                "job": fit_request(ids["model"], ids["dataset"], epochs=1) | {"seed": 3, "backend": "jax"},
                "space": {"fit.batch_size": {"choice": [50, 100]}},
                "objective": {"metric": "val_loss"},
                "budget": {"max_trials": 1},
            }
            refused = client.post("/v1/sweeps", json={**sweep, "job": {**sweep["job"], "backend": "torch"}})
            assert refused.status_code == 422, refused.text
            assert refused.json()["backends"] == ["jax"] and refused.json()["field"] == "job.backend"
            made = client.post("/v1/sweeps", json=sweep)
            assert made.status_code == 201, made.text
            trial = wait_for_job(client, made.json()["trials"][0]["job_id"])
            assert trial["status"] == "succeeded" and trial["request"]["backend"] == "jax", trial["error"]
            assert trial["result"]["trained_with"]["backend"] == "jax"

            pipeline = fit_request(ids["model"], ids["dataset"], epochs=1, batch_size=None)
            pipeline["fit"] = {
                "x": {
                    "pipeline": {
                        "x": ref(ids["dataset"], "train_x"),
                        "y": ref(ids["dataset"], "train_y"),
                        "ops": [{"op": "batch", "batch_size": 32}],
                    }
                },
                "epochs": 1,
            }
            refused = client.post("/v1/jobs", json=pipeline)
            assert refused.status_code == 422 and "needs TensorFlow" in refused.json()["detail"], refused.text

        for name in JAX_SECTIONS:
            output = run_example(name, stack.url, tmp_path)
            for pattern in EXPECTED[name]:
                assert re.search(pattern, output, re.M), f"{name}: no line matching {pattern!r} in:\n{output[-4000:]}"
        assert worker.alive(), worker.log_text()[-3000:]
        for process in (worker, stack.api):
            assert "No module named 'tensorflow'" not in process.log_text(), process.log_text()[-3000:]
    finally:
        stack.stop()


def test_a_torch_worker_runs_the_tutorial_job(server_env, logs_dir) -> None:
    """Where PyTorch is installed (scripts/test installs a CPU build lying in pip's find-links folder): a worker on
    Keras's torch backend, TensorFlow unimportable in it, runs the §3.2 job named for it, on the CPU, and the same
    seeded job twice gives the same weights, bit for bit, and the same history."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        pytest.skip(
            "PyTorch is not installed here (its PyPI wheels pull ~2 GB of CUDA libraries, too much for CI; "
            "scripts/test installs a CPU build it finds in pip's find-links folder): "
            "pip install torch --index-url https://download.pytorch.org/whl/cpu to run this"
        )
    stack = Stack({**server_env, "KERASD_QUEUE": f"kerasd-torch-{uuid.uuid4().hex[:8]}"}, logs_dir)
    try:
        worker = stack.worker(KERAS_BACKEND="torch", PYTHONPATH=NO_TENSORFLOW)
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            ids = seed_ids(client)
            request = fit_request(ids["model"], ids["dataset"]) | {"backend": "torch", "seed": 1}
            first, again = (wait_for_job(client, client.post("/v1/jobs", json=request).json()["id"]) for _ in range(2))
            assert first["status"] == again["status"] == "succeeded", (first["error"], again["error"])
            trained = first["result"]["trained_with"]
            assert trained["backend"] == "torch" and trained["device"] == "cpu", trained
            assert trained["tensorflow"] is None, trained
            # Keras's PyTorch trainer takes one step per execution and nothing else is tuned: the record says why.
            record = first["result"]["tuning"]
            assert record["steps_per_execution"] == 1 and record["tuned"] == [], record
            assert any("stays 1 on the torch backend" in note for note in record["notes"]), record
            assert len(first["history"]["val_loss"]) == 10
            assert first["history"] == again["history"]
            weights = [
                _weights(client.get(f"/v1/jobs/{job['id']}/artifacts/weights.h5").content) for job in (first, again)
            ]
            assert weights[0] and weights[1].keys() == weights[0].keys()
            assert all(np.array_equal(weights[0][name], weights[1][name]) for name in weights[0])
        assert worker.alive(), worker.log_text()[-3000:]
        assert "No module named 'tensorflow'" not in worker.log_text(), worker.log_text()[-3000:]
    finally:
        stack.stop()
