"""The bare `kerasd` distribution (httpx, httpx-sse, tenacity, numpy; no TensorFlow, no Keras) in a fresh virtual
environment: it installs, imports, runs a job through the plain resources against the real API and worker, and
registers it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `pip install kerasd` brings (httpx, httpx-sse, tenacity and numpy with their own dependencies), for the
# offline fallback.
BARE_DEPENDENCIES = ("httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio", "httpx_sse", "tenacity",
                     "numpy", "numpy.libs", "typing_extensions.py")

SCRIPT = r'''
import importlib.util, json, sys
import numpy as np
import kerasd

assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is importable in the bare environment"
assert importlib.util.find_spec("keras") is None, "Keras is importable in the bare environment"
client = kerasd.Client(sys.argv[1], verbose=0)
rng = np.random.default_rng(0)
x = rng.random((256, 8), dtype="float32")
y = np.eye(3, dtype="float32")[rng.integers(0, 3, 256)]
dataset = client.datasets.upload({"x": x, "y": y})
model = client.models.create({"type": "sequential", "name": "bare_sdk", "input_shape": [8],
                              "layers": [{"class_name": "Dense", "units": 3, "activation": "softmax"}]})
pipeline = kerasd.data.Dataset.from_tensor_slices((x, y)).shuffle(256, seed=1).batch(32)
job = client.jobs.create(kind="fit", model_id=model["id"], seed=1,
                         compile={"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
                                  "loss": "categorical_crossentropy", "metrics": ["categorical_accuracy"]},
                         fit={"x": pipeline.to_spec(lambda array, role: {"dataset_id": client.datasets.upload(
                                  array, filename=role + ".npy")["id"]}), "epochs": 3})
epochs = [event.epoch for event in client.jobs.events(job["id"]) if event.type == "epoch"]
done = client.jobs.wait(job["id"], timeout=300)
weights = client.jobs.artifact(job["id"], "weights.h5")
try:
    client.remote(object())
    remote_error = None
except ImportError as exc:
    remote_error = str(exc)
version = client.registry.register(job["id"], "bare-" + job["id"][:8])
registry_weights = client.registry.download(version.reference, "weights.h5")
try:
    version.pull()
    pull_error = None
except ImportError as exc:
    pull_error = str(exc)
print(json.dumps({"epochs": epochs, "status": done["status"], "error": done["error"],
                  "history": sorted(done["history"]), "hdf5": weights[:8] == b"\x89HDF\r\n\x1a\n",
                  "remote_error": remote_error, "pull_error": pull_error, "version": version.reference,
                  "registry_weights": registry_weights == weights,
                  "dataset_arrays": [a["name"] for a in dataset["arrays"]],
                  "heavy_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}))
'''


def _site_packages(venv: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    found = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def _install(venv: Path, source: Path) -> str:
    """`pip install` the SDK from its source (httpx and numpy from the pip cache or PyPI); without a
    package index, link the same packages from this environment instead. Says which way it went."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
           "--timeout", "20", "--retries", "1"]
    installed = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=600)
    if installed.returncode == 0:
        return "pip"
    site = _site_packages(venv)
    here = Path(sysconfig.get_paths()["purelib"])
    for name in BARE_DEPENDENCIES:
        if (here / name).exists():
            os.symlink(here / name, site / name)
    shutil.copytree(source / "kerasd", site / "kerasd")
    return f"linked (pip failed: {installed.stderr.strip().splitlines()[-1:]})"


def test_the_bare_sdk_runs_a_job_without_tensorflow(api_url: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "kerasd", source / "kerasd", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    how = _install(venv, source)
    print(f"bare SDK installed by {how}")

    listing = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                             capture_output=True, text=True, check=True).stdout
    names = {item["name"].lower() for item in json.loads(listing)}
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf-keras"}, names

    run = subprocess.run([str(venv / "bin" / "python"), "-c", SCRIPT, api_url], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env={k: v for k, v in os.environ.items()
                                                                           if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr[-5000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded", result["error"]
    assert result["epochs"] == [0, 1, 2]
    assert result["history"] == ["categorical_accuracy", "loss"]
    assert result["hdf5"] and result["dataset_arrays"] == ["x", "y"]
    assert result["heavy_modules"] == []
    assert result["remote_error"] and "needs Keras" in result["remote_error"]
    # The registry works without Keras too, but for pull(), which says what it needs.
    assert result["version"].endswith("/1") and result["registry_weights"]
    assert result["pull_error"] and "needs Keras" in result["pull_error"]
