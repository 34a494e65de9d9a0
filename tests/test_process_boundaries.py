"""DESIGN.md §2: the API process never imports TensorFlow; Keras runs only in sandboxes and workers."""

from __future__ import annotations

import subprocess
import sys


def test_api_process_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from app.main import create_app\n"
        "from app.jobs import service as jobs\n"
        "from app.models import service as models\n"
        "from app.datasets import service as datasets\n"
        "create_app()\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'jax', 'workers') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_version_reports_keras_and_live_workers(client, worker) -> None:
    version = client.get("/version").json()
    assert version["kerasd"] == "0.1.0"
    assert version["tensorflow"].startswith("2.21") and version["keras"].startswith("3.")
    assert version["backend"] == "tensorflow"
    assert any(w["queue"].startswith("kerasd-test-") for w in version["workers"])


def test_ready_sees_sql_redis_and_a_worker(client, worker) -> None:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["sql"] == response.json()["checks"]["redis"] == "ok"
