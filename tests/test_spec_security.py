"""User specs are untrusted programs (DESIGN.md §3): one test per Keras CVE of 2024-2026, each sent to the
real API (a 422 that says why) and run through the spec checker's own code in a probe process (both the
API's pure-Python checks and the sandbox refuse it alone; no module is imported, no file written or read,
no process, socket, marshal or exec). Plus the memory exhaustion of a sandbox: a 422, the API unharmed."""

from __future__ import annotations

import base64
import json
import marshal
import select
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests import model_files
from tests.test_bad_input import assert_problem, counts

ROOT = Path(__file__).resolve().parent.parent


class Probe:
    """`python -m tests.spec_probe` with HOME, KERAS_HOME, TMPDIR and its working directory in one watched root."""

    def __init__(self, root: Path, env: dict[str, str], log: Path) -> None:
        for name in ("home", "tmp", "work"):
            (root / name).mkdir()
        env = {**env, "HOME": str(root / "home"), "KERAS_HOME": str(root / "home" / ".keras"),
               "TMPDIR": str(root / "tmp"), "KERASD_PROBE_ROOT": str(root), "PYTHONPATH": str(ROOT)}
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-m", "tests.spec_probe"], cwd=root / "work", env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("wb"),
                                        text=True)
        assert self._reply(240) == {"ready": True}

    def _reply(self, timeout: float) -> dict[str, Any]:
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else ""
        assert line, f"the probe did not answer:\n{self.log.read_text()[-3000:]}"
        return json.loads(line)

    def run(self, **request: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._reply(120)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def probe(server_env, tmp_path_factory):
    probe = Probe(tmp_path_factory.mktemp("probe"), server_env, tmp_path_factory.mktemp("probe-log") / "probe.log")
    yield probe
    probe.close()


def assert_harmless(report: dict[str, Any], refusal: str, needles: tuple[str, ...], *, reads: tuple[str, ...] = (),
                    api_refuses: bool = True) -> None:
    """Each layer refused it with the checker's own refusal (`refusal`, naming `needles`), not by crashing on
    it, and nothing was imported, written, read, run or connected to meanwhile."""
    sandbox = report["sandbox"]
    assert sandbox["refused"] and sandbox["error_type"] == refusal, report
    assert all(needle in sandbox["error"] for needle in needles), (needles, report)
    if api_refuses:
        assert report["api"]["refused"] and report["api"]["error"].startswith(f"{refusal}: "), report
        assert all(needle in report["api"]["error"] for needle in needles), (needles, report)
    assert report["new_modules"] == [], report
    assert report["new_files"] == [], report
    assert [e for e in report["events"] if not (e["event"] == "open" and not e["writing"] and e["path"] in reads)] \
        == [], report


def refused_spec(client, probe, body: dict[str, Any], *needles: str) -> dict[str, Any]:
    before = counts()
    problem = assert_problem(client.post("/v1/models", json=body), 422, *needles)
    assert counts() == before
    assert_harmless(probe.run(kind="spec", body=body), "UnsafeSpec", needles)
    return problem


def refused_file(client, probe, path: Path, *needles: str, refusal: str = "UnsafeFile") -> dict[str, Any]:
    """A file refused by the API's sandbox, and by the checker's code (UnsafeFile for the file itself, UnsafeSpec
    for the config inside it) in the probe."""
    before = counts()
    problem = assert_problem(client.post("/v1/models", files={"file": (path.name, path.read_bytes())}), 422,
                             *needles)
    assert counts() == before
    file_format = "keras" if path.suffix == ".keras" else "h5"
    assert_harmless(probe.run(kind="file", path=str(path), format=file_format), refusal, needles,
                    reads=(str(path),), api_refuses=False)
    return problem


def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    """A Keras JSON document, as model.to_json() writes it, holding the given layer configs."""
    return {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {
        "name": "sequential", "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4]},
             "registered_name": None}, *layers]}}


def lambda_layer(name: str = "evil") -> dict[str, Any]:
    """A Lambda layer carrying marshalled bytecode that would write a file when called."""
    code = base64.b64encode(marshal.dumps((lambda x: open("pwned", "w")).__code__)).decode()
    return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "config": {
        "name": name, "function": {"class_name": "__lambda__", "config": {"value": [code, None, None]}},
        "arguments": {}}}


def dense(**config: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "config": {"units": 2, **config}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    return model_files.saved(model_files.small_model(), tmp_path_factory.mktemp("honest") / "model.keras")


@pytest.fixture()
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(f"TOP-SECRET-{uuid.uuid4().hex}")
    return path


def with_config(archive: bytes, tmp_path: Path, *layers: dict[str, Any]) -> Path:
    config = model_files.config_of(archive)
    config["config"]["layers"].extend(layers)
    path = tmp_path / "hostile.keras"
    path.write_bytes(model_files.rewrite_archive(archive, config=config))
    return path


def test_cve_2024_3660_lambda_bytecode(client, probe):
    refused_spec(client, probe, sequential(lambda_layer()), "Lambda", "CVE-2024-3660")
    refused_spec(client, probe, {"input_shape": [4], "layers": [
        {"class_name": "Lambda", "function": {"class_name": "__lambda__", "config": {"value": ["AA==", None, None]}}}]},
        "Lambda")


def test_cve_2025_1550_config_names_an_arbitrary_module(client, probe, archive, tmp_path):
    # `this` prints on import: a module Keras must never be made to import.
    hostile = with_config(archive, tmp_path, {"module": "this", "class_name": "Zen", "config": {},
                                              "registered_name": None})
    refused_file(client, probe, hostile, "'this'", refusal="UnsafeSpec")
    refused_spec(client, probe, sequential({"module": "builtins", "class_name": "function", "config": "exec",
                                            "registered_name": "function"}), "exec")


def test_cve_2025_8747_keras_utils_get_file(client, probe):
    download = {"module": "keras.utils", "class_name": "get_file", "registered_name": None,
                "config": {"fname": "pwned", "origin": "http://127.0.0.1:9/pwned", "cache_dir": "."}}
    refused_spec(client, probe, sequential(dense(kernel_initializer=download)), "keras.utils")
    as_function = {"module": "keras.utils", "class_name": "function", "config": "get_file",
                   "registered_name": "function"}
    refused_spec(client, probe, sequential(dense(activation=as_function)), "get_file", "CVE-2025-8747")


def test_cve_2025_9906_enable_unsafe_deserialization_then_lambda(client, probe, archive, tmp_path):
    unlock = {"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
              "registered_name": "function"}
    hostile = with_config(archive, tmp_path, dense(activation=unlock), lambda_layer())
    refused_file(client, probe, hostile, "enable_unsafe_deserialization", refusal="UnsafeSpec")
    refused_spec(client, probe, sequential(dense(activation=unlock), lambda_layer()), "CVE-2025-9906")


@pytest.mark.parametrize("vocabulary", ["/etc/passwd", "http://169.254.169.254/latest/meta-data/", "kerasd.db"])
def test_cve_2025_12058_vocabulary_file_or_url(client, probe, vocabulary):
    lookup = {"module": "keras.layers", "class_name": "StringLookup", "registered_name": None,
              "config": {"vocabulary": vocabulary}}
    refused_spec(client, probe, {**sequential(lookup)}, "vocabulary")
    refused_spec(client, probe, {"input_shape": [1], "input_dtype": "string",
                                 "layers": [{"class_name": "StringLookup", "vocabulary": vocabulary}]}, "vocabulary")


@pytest.mark.parametrize("attack", ["external_storage", "external_link", "virtual_dataset"])
def test_cve_2026_1669_hdf5_data_from_other_files(client, probe, archive, tmp_path, secret, attack):
    change = getattr(model_files, attack)(secret)
    hostile = tmp_path / "hostile.keras"
    hostile.write_bytes(model_files.rewrite_archive(archive, weights=change))
    problem = refused_file(client, probe, hostile, "CVE-2026-1669")
    assert secret.read_text() not in json.dumps(problem)


def test_cve_2026_1669_in_a_legacy_h5_model(client, probe, tmp_path, secret):
    import h5py

    path = tmp_path / "hostile.h5"
    model_files.small_model().save(path)
    with h5py.File(path, "a") as h5:
        model_files.external_storage(secret)(h5)
    problem = refused_file(client, probe, path, "external file")
    assert secret.read_text() not in json.dumps(problem)


def test_cve_2026_12481_lambda_inside_a_wrapper(client, probe):
    wrapped = {"module": "keras.layers", "class_name": "TimeDistributed", "registered_name": None,
               "config": {"name": "wrapper", "layer": lambda_layer("inner")}}
    refused_spec(client, probe, sequential(wrapped), "Lambda", "CVE-2026-12481")
    refused_spec(client, probe, {"input_shape": [3, 4], "layers": [
        {"class_name": "TimeDistributed", "layer": {"class_name": "Lambda", "function": "os.system"}}]}, "Lambda")


def test_cve_2026_1462_tfsm_layer_and_code_wrappers(client, probe):
    refused_spec(client, probe, sequential({"module": "keras.layers", "class_name": "TFSMLayer",
                                            "registered_name": None, "config": {"filepath": "saved_model"}}),
                 "TFSMLayer")
    refused_spec(client, probe, sequential({"module": "keras.layers", "class_name": "TorchModuleWrapper",
                                            "registered_name": None, "config": {"module": "gASV"}}),
                 "TorchModuleWrapper")


@pytest.mark.parametrize("name", ["../../etc/cron.d/pwned", "a/b", ".."])
def test_cve_2026_12479_layer_names_that_are_paths(client, probe, name):
    refused_spec(client, probe, sequential(dense(name=name)), "name")


def test_cve_2026_0897_hdf5_dataset_declaring_an_absurd_shape(client, probe, archive, tmp_path):
    hostile = tmp_path / "bomb.keras"
    hostile.write_bytes(model_files.rewrite_archive(archive, weights=model_files.shape_bomb))
    refused_file(client, probe, hostile, "CVE-2026-0897")


def test_registered_names_outside_the_plugin_registry(client, probe):
    refused_spec(client, probe, sequential({"module": "kerasd_plugins.seed", "class_name": "MyLayer",
                                            "registered_name": "evil>MyLayer", "config": {"output_dim": 2}}),
                 "evil>MyLayer", "/v1/plugins")
    refused_spec(client, probe, sequential({"module": "os", "class_name": "system",
                                            "registered_name": "kerasd>MyLayer", "config": {}}), "kerasd>MyLayer")


def test_shape_bombs_in_the_config(client, probe):
    refused_spec(client, probe, {"input_shape": [100_000, 100_000, 1_000], "layers": [
        {"class_name": "Flatten"}]}, "elements per sample")
    refused_spec(client, probe, sequential({"module": "keras.layers", "class_name": "Reshape", "registered_name": None,
                                            "config": {"target_shape": [10**6, 10**6]}}), "elements per sample")


def test_archive_members_outside_the_archive(client, probe, archive, tmp_path):
    hostile = tmp_path / "slip.keras"
    hostile.write_bytes(model_files.rewrite_archive(archive, extra={"../../pwned.txt": b"x"}))
    refused_file(client, probe, hostile, "outside the archive")


def _api_process(api_url: str):
    import psutil

    port = api_url.rsplit(":", 1)[-1]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "api" in cmdline and port in cmdline:
            return process
    raise AssertionError(f"no API process on port {port}")


def _sandboxes(api) -> set[int]:
    """The pids of the API's spec checker sandboxes, children it started with their own command line."""
    return {child.pid for child in api.children(recursive=True)
            if "app.specchecker.sandbox" in " ".join(child.cmdline())}


def test_a_spec_that_exhausts_the_checker_memory_is_422_and_the_api_stays_up(client, api_url):
    api = _api_process(api_url)
    client.post("/v1/models", json={"input_shape": [4], "layers": [{"class_name": "Dense", "units": 2}]})
    before = api.memory_info().rss
    sandboxes_before = _sandboxes(api)
    assert sandboxes_before and api.pid not in sandboxes_before
    # Normalization broadcasts its mean to the input shape: 4 GB for one sample, no parameters to count.
    bomb = {"input_shape": [1_000_000_000], "layers": [{"class_name": "Normalization", "mean": 0.5,
                                                        "variance": 2.0}]}
    problem = assert_problem(client.post("/v1/models", json=bomb), 422, "memory")
    assert problem["title"] == "Spec Check Failed"
    assert client.get("/health").status_code == 200
    after = api.memory_info().rss
    assert after - before < 64 * 1024 * 1024, (before, after)
    # A fresh sandbox took the exhausted one's place.
    again = client.post("/v1/models", json={"input_shape": [4], "layers": [{"class_name": "Dense", "units": 2}]})
    assert again.status_code == 201, again.text
    # The bomb went off in a sandbox of its own, which was retired and replaced; the API process lives on.
    sandboxes_after = _sandboxes(api)
    assert sandboxes_before - sandboxes_after and sandboxes_after - sandboxes_before, (sandboxes_before,
                                                                                      sandboxes_after)
    assert api.pid not in sandboxes_after and api.is_running()


def test_the_modules_of_keras_applications_layers_admit_only_those_layers(client, probe):
    # ConvNeXt's LayerScale and keras.ops's Add and Multiply are allowed under their own private modules, for
    # keras.applications architectures; nothing else there, and not by a bare class name.
    refused_spec(client, probe, sequential({"module": "keras.src.ops.numpy", "class_name": "Einsum",
                                            "registered_name": None, "config": {"subscripts": "ij->j"}}),
                 "keras.src.ops.numpy class 'Einsum'")
    refused_spec(client, probe, sequential({"module": "keras.src.applications.convnext", "class_name": "ConvNeXt",
                                            "registered_name": None, "config": {}}), "'ConvNeXt'")
    refused_spec(client, probe, sequential({"module": "keras.src.applications.convnext",
                                            "class_name": "CustomScaleLayer", "registered_name": None,
                                            "config": {"scale": 1.0}}), "'CustomScaleLayer'")
