"""A sweep on `kerasd up` (SQLite, an embedded Redis, one worker): its trials run and it completes, its study kept in
the file beside the database."""

from __future__ import annotations

from pathlib import Path

import kerasd
from tests.seed import npz_bytes
from tests.services import embedded_stack
from tests.test_sweeps import MODEL, base_job, learnable_arrays


def test_a_sweep_completes_on_the_embedded_sqlite_stack(tmp_path: Path) -> None:
    with embedded_stack(tmp_path) as stack:
        client = kerasd.Client(stack.url)
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
        assert (stack.data_dir / "kerasd.db.optuna").exists()
