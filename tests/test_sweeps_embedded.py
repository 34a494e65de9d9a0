"""A sweep on `kerasd up` (SQLite, an embedded Redis, one worker): its trials run and it completes, its study kept in
the file beside the database."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import kerasd
from tests.seed import npz_bytes
from tests.services import Process, free_port
from tests.test_sweeps import MODEL, base_job, learnable_arrays

ROOT = Path(__file__).resolve().parent.parent


def test_a_sweep_completes_on_the_embedded_sqlite_stack(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASD_")}
    env["KERASD_VENV"] = sys.prefix
    data_dir = tmp_path / "data"
    up = Process([str(ROOT / "scripts" / "up"), "--port", str(port), "--redis-port", str(redis_port),
                  "--data-dir", str(data_dir)], env, tmp_path / "up.log")
    try:
        up.wait_for_log("kerasd is up", timeout_s=300)
        client = kerasd.Client(f"http://127.0.0.1:{port}")
        (tmp_path / "sweep.npz").write_bytes(npz_bytes(**learnable_arrays()))
        dataset = client.datasets.upload(tmp_path / "sweep.npz")
        model = client.models.create(MODEL)
        sweep = client.sweeps.create(
            job=base_job({"dataset": dataset["id"], "model": model["id"]}, epochs=1), algorithm="tpe", seed=1,
            space={"compile.optimizer.config.learning_rate": {"log_uniform": [1e-3, 1e-1]}},
            objective={"metric": "val_loss"}, budget={"max_trials": 3, "max_concurrent": 2})
        done = client.sweeps.wait(sweep["id"], timeout=600)
        assert done["status"] == "completed" and done["counts"] == {"succeeded": 3}, done
        assert done["best"]["objective"] == min(trial["objective"] for trial in done["trials"])
        assert (data_dir / "kerasd.db.optuna").exists()
    finally:
        up.popen.send_signal(signal.SIGTERM)
        up.popen.wait(timeout=60)
