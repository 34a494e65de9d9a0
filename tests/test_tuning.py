"""Execution tuning (issue 11): a tuned fit gives exactly what an untuned one gives, and the job says what was done.

The jobs run on the real worker; each tuned job is compared with the same job with `"tuning": false`, which
runs Keras with the job's own arguments (tests/test_training_jobs.py compares those with plain Keras). The
XLA trial and the choice of steps per execution are also checked in this process, where their inputs can be
set. No test here asserts a time: the benchmark (bench/throughput.py) measures speed.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.keras_local import assert_weights_equal, trained_model
from tests.seed import (
    SEED_COMPILE,
    fit_request,
    npz_bytes,
    read_events,
    ref,
    run,
    seed_arrays,
    upload,
    upload_seed,
)


@pytest.fixture(scope="module")
def seed_ids(api_url):
    return upload_seed(api_url, seed_arrays())


def run_both(client, request) -> tuple[dict, dict]:
    """The job tuned (the default) and untuned, otherwise the same."""
    untuned = copy.deepcopy(request)
    untuned["tuning"] = False
    return run(client, request), run(client, untuned)


def assert_same_training(client, tuned: dict, untuned: dict, tmp_path) -> None:
    assert tuned["history"] == untuned["history"]
    assert_weights_equal(
        trained_model(client, tuned["id"], tmp_path).get_weights(),
        trained_model(client, untuned["id"], tmp_path).get_weights(),
        atol=0,
    )


def assert_chosen_for_the_measured_step(record: dict, *, steps_per_epoch: int | None, must_divide: list[int]) -> int:
    """The live path applied the choice (tests/test_tuning_choice.py) to the step time it measured, whatever
    that time was on this machine; the record rounds it to 1 us, so the choice is bracketed by the choices for
    the times half a microsecond either side (a longer step never gets more steps per execution)."""
    from workers.tuning_choice import choose_steps_per_execution

    step_ms = record["measured_step_ms"]
    assert step_ms > 0, record

    def choose(t: float) -> int:
        # The test server's batch event interval (0.1 s) bounds an execution at the default 0.1 s.
        return choose_steps_per_execution(t, execution_s=0.1, steps_per_epoch=steps_per_epoch, must_divide=must_divide)

    spe = record["steps_per_execution"]
    assert choose((step_ms + 0.0005) / 1e3) <= spe <= choose((step_ms - 0.0005) / 1e3), record
    return spe


def test_seed_example_identical_with_and_without_tuning(client, seed_ids, tmp_path):
    """The tutorial's §3.2 job (with §4.4's EarlyStopping), same seed: bit-identical weights and history."""
    request = fit_request(seed_ids["model"], seed_ids["dataset"])
    request["callbacks"] = [{"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 2}}]
    tuned, untuned = run_both(client, request)
    assert_same_training(client, tuned, untuned, tmp_path)
    # The same job again: its validation batches are the ones the worker kept from the first, and nothing changes.
    again = run(client, request)
    assert_same_training(client, again, untuned, tmp_path)
    assert any(change.startswith("validation arrays: ") for change in again["result"]["tuning"]["inputs"])

    record = tuned["result"]["tuning"]
    # 1000 rows in batches of 100: an epoch is 10 steps, which fit in one execution unless a step takes over
    # 10 ms (a loaded machine): executions never span epochs.
    assert record["enabled"] is True and record["tuned"] == ["steps_per_execution"]
    assert 1 <= assert_chosen_for_the_measured_step(record, steps_per_epoch=10, must_divide=[]) <= 10
    assert record["jit_compile"] is False and any("jit_compile" in note for note in record["notes"])
    assert untuned["result"]["tuning"] == {"enabled": False}
    # The job's request echoes the option, and the exported model keeps the user's compile arguments.
    assert untuned["request"]["tuning"] is False and tuned["request"]["tuning"] is True
    import keras

    path = tmp_path / "model.keras"
    path.write_bytes(client.get(f"/v1/jobs/{tuned['id']}/artifacts/model.keras").content)
    assert keras.models.load_model(path).get_compile_config()["steps_per_execution"] == 1


def test_live_progress_during_tuned_training(client, tmp_path):
    """A longer fit: executions of many steps, still several batch events in every epoch, each at the end of
    an execution; a `log` event says what tuning chose; the result equals the untuned job's."""
    rng = np.random.default_rng(3)
    x = rng.random((40_000, 72), dtype="float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 40_000)]
    dataset = upload(client, "progress.npz", npz_bytes(x=x, y=y)).json()
    model = client.post(
        "/v1/models",
        json={
            "type": "sequential",
            "input_shape": [72],
            "layers": [
                {"class_name": "Dense", "units": 64, "activation": "relu"},
                {"class_name": "Dropout", "rate": 0.1},
                {"class_name": "Dense", "units": 10, "activation": "softmax"},
            ],
        },
    ).json()
    request = {
        "model_id": model["id"],
        "compile": copy.deepcopy(SEED_COMPILE),
        "seed": 11,
        "fit": {
            "x": ref(dataset["id"], "x"),
            "y": ref(dataset["id"], "y"),
            "epochs": 3,
            "batch_size": 16,
            "validation_split": 0.1,
        },
    }
    tuned, untuned = run_both(client, request)
    assert_same_training(client, tuned, untuned, tmp_path)

    steps = 2250  # 36,000 training rows / 16
    spe = assert_chosen_for_the_measured_step(tuned["result"]["tuning"], steps_per_epoch=steps, must_divide=[])
    assert 1 <= spe < steps
    events = read_events(client, tuned["id"])
    assert any(e["type"] == "log" and e["data"]["message"].startswith("tuning: steps_per_execution=") for e in events)
    batches = [e["data"] for e in events if e["type"] == "batch"]
    for epoch in range(3):
        done = [b["step"] for b in batches if b["epoch"] == epoch]
        assert len(done) >= 2, f"epoch {epoch}: batch events at steps {done}"
        assert done == sorted(done) and all(step % spe == 0 for step in done[:-1]), (spe, done)


def test_user_settings_win(client, seed_ids, tmp_path):
    """steps_per_execution and jit_compile the job sets are kept, even at Keras's default values."""
    request = fit_request(seed_ids["model"], seed_ids["dataset"], epochs=2)
    request["compile"].update(steps_per_execution=1, jit_compile=False)
    job = run(client, request)
    record = job["result"]["tuning"]
    assert record["steps_per_execution"] == 1 and record["tuned"] == []
    assert record["user_set"] == ["jit_compile", "steps_per_execution"]

    request["compile"]["steps_per_execution"] = 4
    assert run(client, request)["result"]["tuning"]["steps_per_execution"] == 4


def test_batch_level_callbacks_keep_one_step(client, seed_ids, tmp_path):
    """TerminateOnNaN watches every batch's loss: tuning leaves steps_per_execution at 1 and says why."""
    request = fit_request(seed_ids["model"], seed_ids["dataset"], epochs=2)
    request["callbacks"] = [{"class_name": "TerminateOnNaN"}]
    tuned, untuned = run_both(client, request)
    assert_same_training(client, tuned, untuned, tmp_path)
    record = tuned["result"]["tuning"]
    assert record["steps_per_execution"] == 1 and "TerminateOnNaN" in " ".join(record["notes"])


def test_pipeline_with_steps_per_epoch(client, seed_ids, tmp_path):
    """§3.3's pipeline (batch(32).repeat(), steps_per_epoch=30, validation_steps=3): executions divide both
    counts (Keras would run whole executions past them), and the pipeline gets a prefetch; same results."""

    def pipeline(x, y):
        return {
            "pipeline": {
                "x": ref(seed_ids["dataset"], x),
                "y": ref(seed_ids["dataset"], y),
                "ops": [
                    {"op": "shuffle", "buffer_size": 1000, "seed": 5},
                    {"op": "batch", "batch_size": 32},
                    {"op": "repeat"},
                ],
            }
        }

    request = {
        "model_id": seed_ids["model"],
        "compile": copy.deepcopy(SEED_COMPILE),
        "seed": 7,
        "fit": {
            "x": pipeline("train_x", "train_y"),
            "epochs": 4,
            "steps_per_epoch": 30,
            "validation_data": pipeline("val_x", "val_y"),
            "validation_steps": 3,
        },
    }
    tuned, untuned = run_both(client, request)
    assert_same_training(client, tuned, untuned, tmp_path)
    record = tuned["result"]["tuning"]
    # A divisor of both 30 and 3: 3 unless a step takes over a third of an execution.
    assert assert_chosen_for_the_measured_step(record, steps_per_epoch=30, must_divide=[30, 3]) in (1, 3)
    assert record["inputs"] == ["pipeline: prefetch(AUTOTUNE) added", "validation pipeline: prefetch(AUTOTUNE) added"]


# --- in this process: the choices themselves ------------------------------------------------------------


def test_choose_steps_per_execution():
    from workers.tuning_choice import choose_steps_per_execution

    # 1 ms a step, executions of 0.1 s: 100 steps; 1563 steps an epoch split evenly: 16 executions of 98.
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=1563, must_divide=[]) == 98
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=10, must_divide=[]) == 10
    assert choose_steps_per_execution(0.5, execution_s=0.1, steps_per_epoch=100, must_divide=[]) == 1
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=30, must_divide=[30, 3]) == 3
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=None, must_divide=[]) == 100


def test_xla_trial_leaves_the_job_random_state_alone():
    """The XLA trial builds and trains copies of the model; a fit after it draws exactly what it would have
    drawn without it (dropout included), and the trial reports both step times and whether XLA is identical."""
    import keras

    from workers.xla_trial import xla_trial

    rng = np.random.default_rng(0)
    x = rng.random((512, 16), dtype="float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 512)]

    def train(trial: bool):
        keras.utils.set_random_seed(5)
        model = keras.Sequential(
            [
                keras.Input((16,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(4, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        found = xla_trial(model, x[:64], y[:64], steps=2) if trial else None
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        return model.get_weights(), found

    plain, _ = train(False)
    after_trial, found = train(True)
    assert_weights_equal(after_trial, plain, atol=0)
    assert set(found["step_ms"]) == {"xla", "no_xla"} and isinstance(found["identical"], bool)


def test_weights_split_and_class_weight_identical(client, seed_ids, tmp_path):
    """Arrays become Keras's own array-adapter batches on the worker: validation_split, sample_weight,
    class_weight and shuffle come out bit-identical to the untuned job."""
    weights = np.linspace(0.5, 1.5, 1000).astype("float32")
    extra = upload(client, "weights.npz", npz_bytes(w=weights)).json()
    with_weights = fit_request(
        seed_ids["model"], seed_ids["dataset"], epochs=3, validation_split=0.2, sample_weight=ref(extra["id"], "w")
    )
    del with_weights["fit"]["validation_data"]
    tuned, untuned = run_both(client, with_weights)
    assert_same_training(client, tuned, untuned, tmp_path)
    assert any(change.startswith("arrays:") for change in tuned["result"]["tuning"]["inputs"])

    with_classes = fit_request(
        seed_ids["model"], seed_ids["dataset"], epochs=3, shuffle="batch", class_weight={"0": 2.0, "3": 0.5}
    )
    tuned, untuned = run_both(client, with_classes)
    assert_same_training(client, tuned, untuned, tmp_path)
