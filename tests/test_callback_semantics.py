"""What declared callbacks and compile options mean, checked against plain Keras run in the test process.

Each job is seeded; the same seed and arguments in the test process give the same epochs, so the job's
history, weights and callback decisions must be Keras's own, not merely present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.keras_local import (
    assert_history_equal,
    assert_weights_equal,
    fit_on_seed,
    local_model,
    seeded,
    trained_model,
)
from tests.seed import fit_request, npz_bytes, ref, run, upload

SEED = 7  # fit_request's seed


def artifact_weights(client, job_id: str, name: str, tmp_path: Path) -> list[np.ndarray]:
    """A weights artifact of a job (weights.h5, checkpoint.weights.h5) loaded into the job's architecture."""
    import keras

    model = keras.models.model_from_json(client.get(f"/v1/jobs/{job_id}/artifacts/architecture.json").text)
    response = client.get(f"/v1/jobs/{job_id}/artifacts/{name}")
    assert response.status_code == 200, response.text
    path = tmp_path / f"{job_id}-{name.replace('.weights.h5', '')}.weights.h5"
    path.write_bytes(response.content)
    model.load_weights(path)
    return model.get_weights()


def largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(left - right).max()) for left, right in zip(a, b, strict=True))


def local_fit(client, ids, seed_data, *, learning_rate: float, epochs: int, callbacks=(), **compile_extra):
    """The seed example's fit, as fit_request sends it, in plain Keras; returns (model, history)."""
    import keras

    with seeded(SEED):
        model = local_model(client, ids["model"])
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="categorical_crossentropy",
            metrics=["categorical_accuracy"],
            **compile_extra,
        )
        history = fit_on_seed(model, seed_data, epochs=epochs, callbacks=list(callbacks))
    return model, history


# --- ModelCheckpoint(save_best_only=True) ----------------------------------------------------------------

CHECKPOINT_MODEL = {"type": "sequential", "input_shape": [8], "layers": [{"class_name": "Dense", "units": 1}]}
CHECKPOINT_LR = 0.01
CHECKPOINT_EPOCHS = 8


@pytest.fixture(scope="module")
def drift_data():
    """Linear regression whose validation targets sit halfway between the model's start and the training
    targets: SGD walks the weights from near 0 towards 4 (the training solution) and past 2 (the validation
    one), so val_loss falls for a few epochs and then rises while the training loss keeps falling."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(1000, 8)).astype("float32")
    val_x = rng.normal(size=(200, 8)).astype("float32")
    solution = np.full((8, 1), 4.0, dtype="float32")
    return {"x": x, "y": x @ solution, "val_x": val_x, "val_y": val_x @ (solution / 2)}


def checkpoint_request(model_id: str, dataset_id: str, epochs: int) -> dict:
    return {
        "kind": "fit",
        "model_id": model_id,
        "seed": SEED,
        "compile": {"optimizer": {"class_name": "SGD", "config": {"learning_rate": CHECKPOINT_LR}}, "loss": "mse"},
        "fit": {
            "x": ref(dataset_id, "x"),
            "y": ref(dataset_id, "y"),
            "epochs": epochs,
            "batch_size": 100,
            "validation_data": {"x": ref(dataset_id, "val_x"), "y": ref(dataset_id, "val_y")},
        },
        "callbacks": [{"class_name": "ModelCheckpoint", "config": {"monitor": "val_loss", "save_best_only": True}}],
    }


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(client, drift_data, tmp_path):
    """checkpoint.weights.h5 holds the weights of the epoch with the lowest val_loss, not the last epoch's;
    when the best epoch is the last, it equals weights.h5."""
    import keras

    dataset = upload(client, "drift.npz", npz_bytes(**drift_data))
    assert dataset.status_code == 201, dataset.text
    model_created = client.post("/v1/models", json=CHECKPOINT_MODEL)
    assert model_created.status_code == 201, model_created.text
    model_id, dataset_id = model_created.json()["id"], dataset.json()["id"]

    job = run(client, checkpoint_request(model_id, dataset_id, CHECKPOINT_EPOCHS))
    val_loss = job["history"]["val_loss"]
    assert len(val_loss) == CHECKPOINT_EPOCHS
    best = int(np.argmin(val_loss))
    # The data must make the test mean something: the best epoch is neither the first nor the last.
    assert 0 < best < CHECKPOINT_EPOCHS - 1, val_loss

    class Snapshots(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.weights: list[list[np.ndarray]] = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.get_weights())

    snapshots = Snapshots()
    local_file = tmp_path / "local-checkpoint.weights.h5"
    with seeded(SEED):
        model = local_model(client, model_id)
        model.compile(optimizer=keras.optimizers.SGD(CHECKPOINT_LR), loss="mse")
        local = model.fit(
            drift_data["x"],
            drift_data["y"],
            epochs=CHECKPOINT_EPOCHS,
            batch_size=100,
            verbose=0,
            validation_data=(drift_data["val_x"], drift_data["val_y"]),
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    str(local_file), monitor="val_loss", save_best_only=True, save_weights_only=True
                ),
                snapshots,
            ],
        ).history
    assert_history_equal(job["history"], local)
    assert int(np.argmin(local["val_loss"])) == best

    checkpoint = artifact_weights(client, job["id"], "checkpoint.weights.h5", tmp_path)
    final = artifact_weights(client, job["id"], "weights.h5", tmp_path)
    assert_weights_equal(final, snapshots.weights[-1])
    assert_weights_equal(checkpoint, snapshots.weights[best])
    model.load_weights(local_file)  # plain Keras's own ModelCheckpoint file
    assert_weights_equal(checkpoint, model.get_weights())
    # The best epoch's weights are not the last epoch's, nor the next one's (or the checks could not tell).
    assert largest_difference(checkpoint, final) > 1e-2
    assert largest_difference(checkpoint, snapshots.weights[best + 1]) > 1e-2

    # The same seeded job ending at the best epoch: now the best epoch is the last, and the checkpoint is
    # the final weights, bit for bit.
    short = run(client, checkpoint_request(model_id, dataset_id, best + 1))
    assert short["history"]["val_loss"] == pytest.approx(val_loss[: best + 1], rel=1e-5)
    assert int(np.argmin(short["history"]["val_loss"])) == best
    short_checkpoint = artifact_weights(client, short["id"], "checkpoint.weights.h5", tmp_path)
    short_final = artifact_weights(client, short["id"], "weights.h5", tmp_path)
    for left, right in zip(short_checkpoint, short_final, strict=True):
        np.testing.assert_array_equal(left, right)
    assert_weights_equal(short_checkpoint, snapshots.weights[best])


# --- EarlyStopping(start_from_epoch=...) -------------------------------------------------------------------


@pytest.mark.parametrize("start_from_epoch", [0, 4])
def test_early_stopping_waits_for_start_from_epoch(client, ids, seed_data, start_from_epoch):
    """patience=0 and a min_delta no epoch can beat: EarlyStopping ignores the epochs before start_from_epoch,
    takes the first one it watches as its best (it has nothing to compare it with) and stops at the next."""
    import keras

    config = {"monitor": "val_loss", "patience": 0, "min_delta": 1e9, "start_from_epoch": start_from_epoch}
    request = fit_request(ids["model"], ids["dataset"], epochs=20)
    request["callbacks"] = [{"class_name": "EarlyStopping", "config": config}]
    job = run(client, request)

    _, local = local_fit(
        client, ids, seed_data, learning_rate=0.001, epochs=20, callbacks=[keras.callbacks.EarlyStopping(**config)]
    )
    assert len(local["loss"]) == start_from_epoch + 2  # plain Keras's own reading of the arguments
    assert len(job["history"]["loss"]) == start_from_epoch + 2
    assert job["result"]["epochs_run"] == start_from_epoch + 2
    assert_history_equal(job["history"], local)
    stopped = job["result"]["early_stopping"]
    assert stopped["stopped_epoch"] == start_from_epoch + 2  # 1-based, as Keras logs it
    assert stopped["best_epoch"] == start_from_epoch + 1
    assert stopped["monitor"] == "val_loss"
    assert stopped["best"] == pytest.approx(job["history"]["val_loss"][start_from_epoch], rel=1e-6)


# --- compile(weighted_metrics=...) -------------------------------------------------------------------------


def test_weighted_metrics_follow_keras(client, ids, seed_data, tmp_path):
    """weighted_metrics=["accuracy"] with fit's sample_weight (and validation_data's): the history has the
    weighted metric under Keras's key, with Keras's values, and they differ from the unweighted metric."""
    rng = np.random.default_rng(5)
    # Whole-number weights: the weighted sums are exact in float32, so only the model's output can differ.
    train_w = rng.integers(1, 6, 1000).astype("float32")
    val_w = rng.integers(1, 6, 200).astype("float32")
    weights = upload(client, "weights.npz", npz_bytes(train_w=train_w, val_w=val_w))
    assert weights.status_code == 201, weights.text
    weights_id = weights.json()["id"]

    request = fit_request(ids["model"], ids["dataset"], epochs=3, sample_weight=ref(weights_id, "train_w"))
    request["fit"]["validation_data"]["sample_weight"] = ref(weights_id, "val_w")
    request["compile"]["weighted_metrics"] = ["accuracy"]
    job = run(client, request)

    import keras

    with seeded(SEED):
        model = local_model(client, ids["model"])
        model.compile(
            optimizer=keras.optimizers.Adam(0.001),
            loss="categorical_crossentropy",
            metrics=["categorical_accuracy"],
            weighted_metrics=["accuracy"],
        )
        local = fit_on_seed(
            model,
            seed_data,
            epochs=3,
            sample_weight=train_w,
            validation_data=(seed_data["val_x"], seed_data["val_y"], val_w),
        )

    history = job["history"]
    assert {"accuracy", "val_accuracy", "categorical_accuracy", "val_categorical_accuracy"} <= set(history)
    assert set(history) == set(local)
    for key in local:
        np.testing.assert_allclose(history[key], local[key], rtol=0, atol=1e-6, err_msg=key)
    # The weights matter: the weighted accuracy is not the unweighted one.
    differences = np.abs(np.subtract(history["val_accuracy"], history["val_categorical_accuracy"]))
    assert differences.max() > 1e-3, history

    # Independently of Keras's metric classes: the last epoch's validation metrics from the trained weights.
    trained = trained_model(client, job["id"], tmp_path)
    predicted = trained.predict(seed_data["val_x"], batch_size=100, verbose=0)
    correct = (predicted.argmax(axis=1) == seed_data["val_y"].argmax(axis=1)).astype("float64")
    assert history["val_accuracy"][-1] == pytest.approx(float((correct * val_w).sum() / val_w.sum()), abs=1e-6)
    assert history["val_categorical_accuracy"][-1] == pytest.approx(float(correct.mean()), abs=1e-6)
