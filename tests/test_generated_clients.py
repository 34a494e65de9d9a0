"""Clients generated from the served /openapi.json, as a user of another language would make them, run the
tutorial's §3.2 job against the real API and worker: openapi-python-client (with no warning), and
openapi-typescript's types with openapi-fetch (type-checked by tsc, then run by node).

The TypeScript tools are the exact versions of tests/typescript/package-lock.json, installed by `npm ci` there
(.ci/run does it; so does this module when node_modules is missing or older than the lock file).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.seed import npz_bytes, seed_arrays
from tests.tenancy import make_tenant

TESTS = Path(__file__).resolve().parent
TYPESCRIPT = TESTS / "typescript"
# The tutorial's model: 72 -> Dense 32 -> Dense 32 -> Dense 10.
TUTORIAL_PARAMS = (72 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n".hex()


@pytest.fixture(scope="module")
def api_key(api_url: str) -> str:
    return make_tenant("clients")[1]


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arrays") / "seed.npz"
    path.write_bytes(npz_bytes(**seed_arrays()))
    return path


def run(command: list[str], *, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # The generator formats what it writes with ruff, from this virtualenv.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


def assert_tutorial_ran(result: dict[str, Any]) -> None:
    assert result["arrays"] == {"train_x": [1000, 72], "train_y": [1000, 10], "val_x": [200, 72], "val_y": [200, 10]}
    assert result["params"] == TUTORIAL_PARAMS
    assert result["status"] == "succeeded" and result["epochs"] == 10
    assert result["events"][0] == "queued" and result["events"][-1] == "finished"
    assert result["events"].count("epoch") == 10
    assert {"weights.h5", "model.keras", "architecture.json"} <= set(result["artifacts"])
    assert result["weights_head"] == HDF5_SIGNATURE
    # An error answer comes back as the typed problem document.
    assert result["missing"]["status"] == 404 and result["missing"]["title"] == "Not Found"


def test_a_python_client_generated_from_the_document_runs_the_tutorial_job(
        api_url: str, api_key: str, npz_file: Path, tmp_path: Path) -> None:
    generator = Path(sys.executable).parent / "openapi-python-client"
    generated = run([str(generator), "generate", "--url", f"{api_url}/openapi.json", "--meta", "none",
                     "--output-path", str(tmp_path / "kerasd_client")])
    said = generated.stdout + generated.stderr
    assert "warning" not in said.lower(), said
    assert (tmp_path / "kerasd_client" / "api" / "jobs" / "create_job.py").exists()

    ran = run([sys.executable, str(TESTS / "python_client_tutorial.py"), str(tmp_path), api_url, api_key,
               str(npz_file)])
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["missing"]["type"] == "Problem"
    assert_tutorial_ran(result)


@pytest.fixture(scope="module")
def typescript_tools() -> Path:
    npm = shutil.which("npm")
    assert npm, "npm is needed for the TypeScript client test (Node.js 20 or later)"
    installed = TYPESCRIPT / "node_modules" / ".package-lock.json"
    lock = TYPESCRIPT / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        run([npm, "ci", "--no-audit", "--no-fund"], cwd=TYPESCRIPT)
    return TYPESCRIPT / "node_modules" / ".bin"


def test_a_typescript_client_generated_from_the_document_type_checks_and_runs_the_tutorial_job(
        api_url: str, api_key: str, npz_file: Path, typescript_tools: Path) -> None:
    types = TYPESCRIPT / "generated" / "kerasd.ts"
    types.unlink(missing_ok=True)
    # Defaults are not marked always present: in a request they may be left out.
    run([str(typescript_tools / "openapi-typescript"), f"{api_url}/openapi.json", "--output", str(types),
         "--default-non-nullable=false"], cwd=TYPESCRIPT)
    assert "createJob: {" in types.read_text()
    shutil.rmtree(TYPESCRIPT / "build", ignore_errors=True)
    # Type-checks tutorial.ts against the generated types (strict), and writes build/ for node.
    run([str(typescript_tools / "tsc"), "-p", "."], cwd=TYPESCRIPT)

    ran = run(["node", str(TYPESCRIPT / "build" / "tutorial.js"), api_url, api_key, str(npz_file)], cwd=TYPESCRIPT)
    assert_tutorial_ran(json.loads(ran.stdout.strip().splitlines()[-1]))
