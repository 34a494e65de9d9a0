"""Keras's and TensorFlow's internals behind app/specchecker/compat.py: each is there and does what kerasd relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from app.specchecker import compat

NO_TENSORFLOW = str(Path(__file__).parent / "no_tensorflow")


def _small_model():
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                             keras.layers.Dense(2, name="out")])


def test_importing_compat_imports_neither_keras_nor_tensorflow():
    code = ("import sys\nfrom app.specchecker import compat\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_keras_global_state_holds_the_seed_generator_and_saving_skipsets():
    import keras

    keras.utils.set_random_seed(3)
    keras.random.normal((2,))  # an unseeded draw makes Keras's global generator
    generator = compat.global_state().get_global_attribute("global_seed_generator")
    assert isinstance(generator, keras.random.SeedGenerator)
    skipset = compat.saving_attr_skipset("Layer")
    assert {"trainable_variables", "build"} <= skipset and "variables" in compat.saving_attr_skipset("Layer")


def test_array_adapter_and_validation_split_give_fits_batches():
    x = np.arange(40, dtype="float32").reshape(10, 4)
    y = np.arange(10, dtype="float32")
    (train_x, train_y), (_, val_y) = compat.train_validation_split((x, y), validation_split=0.2)
    np.testing.assert_array_equal(train_x, x[:8])  # Keras cuts the last rows off, unshuffled
    np.testing.assert_array_equal(val_y, y[8:])
    adapter = compat.array_data_adapter(train_x, train_y, batch_size=3, shuffle=False)
    batches = list(adapter.get_numpy_iterator())
    assert adapter.num_batches == 3 and [len(b[0]) for b in batches] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y[:8])


def test_model_internals_name_layers_calls_and_metric_order():
    model = _small_model()
    assert [layer.name for layer in compat.all_layers(model)][-2:] == ["hidden", "out"]
    keys = compat.graph_node_keys(model)
    assert keys is not None and all(len(compat.layer_calls(layer, keys)) == 1 for layer in model.layers)
    assert compat.tensor_layer(model.outputs[0]).name == "out"
    assert compat.tensor_layer(np.zeros(2)) is None
    assert compat.functional_graph(model) is not model  # a Sequential's graph is its inner functional model
    assert compat.distribute_strategy(model) is None
    model.compile(loss="mse", metrics=["mae"])
    assert compat.metrics_in_order(model, {"mae": 1.0, "loss": 2.0}) == [2.0, 1.0]


def test_xla_support_follows_op_determinism():
    model = _small_model()
    assert compat.model_supports_jit(model)
    compat.set_op_determinism(True)
    try:
        assert not compat.model_supports_jit(model)  # Keras turns XLA off under deterministic ops
    finally:
        compat.set_op_determinism(False)
    assert compat.model_supports_jit(model)


def test_tensorflow_seed_rng_is_the_one_a_global_seed_sets():
    import keras

    keras.utils.set_random_seed(11)
    first = compat.tensorflow_seed_rng().random()
    keras.utils.set_random_seed(11)
    assert compat.tensorflow_seed_rng().random() == first


def _frames(exc: BaseException) -> list:
    found, tb = [], exc.__traceback__
    while tb is not None:
        found.append(tb.tb_frame)
        tb = tb.tb_next
    return found


def test_failed_calls_and_configs_are_read_from_keras_frames():
    import keras

    filtering = keras.config.is_traceback_filtering_enabled()
    keras.config.disable_traceback_filtering()  # as the spec checker runs: Keras's own frames kept
    try:
        with pytest.raises(ValueError) as refused:
            keras.layers.Dense(2)(keras.KerasTensor((None,)))  # a 1-D input, which Dense cannot take
        with pytest.raises(TypeError) as misspelled:
            keras.saving.deserialize_keras_object({"module": "keras.layers", "class_name": "Dense",
                                                   "registered_name": None, "config": {"unitz": 3}}, safe_mode=True)
    finally:
        if filtering:
            keras.config.enable_traceback_filtering()
    calls = [(compat.called_layer(frame), frame) for frame in _frames(refused.value)]
    calls = [(layer, frame) for layer, frame in calls if layer is not None]
    assert len(calls) == 1 and isinstance(calls[0][0], keras.layers.Dense)
    assert [tuple(t.shape) for t in compat.call_tensors(calls[0][1])] == [(None,)]
    made = [compat.deserializing(frame) for frame in _frames(misspelled.value)]
    made = [found for found in made if found is not None]
    assert made and made[-1][1] is keras.layers.Dense and made[-1][0]["config"] == {"unitz": 3}


def test_legacy_h5_configs_are_read_in_safe_mode_even_where_unsafe_loading_was_enabled(tmp_path):
    import keras

    path = tmp_path / "lambda.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2)]).save(path)
    with h5py.File(path, "r") as h5:
        config = json.loads(h5.attrs["model_config"])
    plain = _small_model()
    plain.save(tmp_path / "plain.h5")
    with h5py.File(tmp_path / "plain.h5", "r") as h5:
        assert compat.model_from_legacy_config(json.loads(h5.attrs["model_config"])).count_params() == 23
    state = compat.global_state()
    before = state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    try:
        with pytest.raises(ValueError, match="Lambda"):
            compat.model_from_legacy_config(config)
    finally:
        state.set_global_attribute("safe_mode_saving", before)


def test_a_missing_keras_internal_is_named_with_the_versions_checked():
    with pytest.raises(ImportError) as caught:
        compat._keras_internal("keras.src.no_such_module", "anything")
    assert isinstance(caught.value, compat.KerasInternalsChanged)
    message = str(caught.value)
    assert "keras.src.no_such_module.anything" in message and "checked against Keras 3.15" in message


def test_on_jax_without_tensorflow_keras_internals_work_and_tensorflow_ones_say_why_not():
    code = """
import sys
import keras
from app.specchecker import compat
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
print(compat.model_supports_jit(model), len(compat.all_layers(model)))
for call in (lambda: compat.set_op_determinism(True), compat.tensorflow_seed_rng):
    try:
        call()
    except compat.NeedsTensorFlow as exc:
        print(exc)
print('tensorflow' in sys.modules)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": NO_TENSORFLOW, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and len(lines) == 4, out.stdout + out.stderr
    assert lines[0] == "True 3"  # the model, its input layer and Dense
    assert lines[1].startswith("op determinism needs TensorFlow") and "jax backend" in lines[1]
    assert "KERAS_BACKEND=tensorflow" in lines[2]
    assert lines[3] == "False"
