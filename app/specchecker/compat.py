"""The Keras and TensorFlow internals kerasd relies on, in one place: each with why, and the versions checked.

Every private module, attribute and frame local of Keras or TensorFlow that kerasd reads is reached through this
module and nowhere else (the keys kerasd reads in Keras's global state are named by their callers, each with its
reason). Each entry says why no public API does the job. All were checked against
Keras 3.15.1 and TensorFlow 2.21.0; pyproject.toml bounds keras below 3.16 and tensorflow to 2.21.x for them, so
a new release is read against this module, and tests/test_compat.py (each entry, as kerasd relies on it),
test_tuning.py, test_spec_security.py and test_model_specs.py run, before a bound moves.

Nothing is imported until it is used: importing this module costs nothing and pulls in neither Keras nor
TensorFlow, so processes that do not train stay free of them. A TensorFlow internal is reached only on the
TensorFlow backend; on another (a JAX worker may have no TensorFlow at all) it raises NeedsTensorFlow, which
says so. A Keras internal that is gone raises KerasInternalsChanged (an ImportError) naming it and the versions
checked.
"""

from __future__ import annotations

import importlib
from types import FrameType, ModuleType
from typing import Any

CHECKED_KERAS = "3.15"
CHECKED_TENSORFLOW = "2.21"


class KerasInternalsChanged(ImportError):
    """The installed Keras lacks an internal kerasd relies on."""


class NeedsTensorFlow(RuntimeError):
    """A TensorFlow internal was asked for in a process whose Keras backend is not TensorFlow."""


def _keras_internal(module: str, name: str | None = None) -> Any:
    try:
        found = importlib.import_module(module)
        return getattr(found, name) if name is not None else found
    except (ImportError, AttributeError) as exc:
        import keras

        what = f"{module}.{name}" if name else module
        raise KerasInternalsChanged(
            f"kerasd relies on Keras's internal {what}, checked against Keras {CHECKED_KERAS}; Keras "
            f"{keras.__version__} has no such thing ({exc}). Install keras~={CHECKED_KERAS}.0, or update "
            "app/specchecker/compat.py for this Keras") from exc


def _tensorflow_internal(module: str, what: str) -> ModuleType:
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise NeedsTensorFlow(f"{what} needs TensorFlow, and this process runs Keras on the {backend} backend: run "
                              "it on a worker with the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    return importlib.import_module(module)


# --- objects keras.applications define in modules of their own -----------------------------------------------

def keras_objects(module: str, names: tuple[str, ...]) -> list[str]:
    """Of `names`, those `module` defines as Keras operations (layers included). keras.applications's own layers
    (ConvNeXt's LayerScale, ...) and keras.ops's operation classes are not exported publicly, and Keras names
    them by these modules in `model.to_json()` (app/specchecker/safety.py's KERAS_APPLICATION_OBJECTS)."""
    import keras

    found = _keras_internal(module)
    return [name for name in names if isinstance(getattr(found, name, None), type)
            and issubclass(getattr(found, name), keras.Operation)]


# --- Keras's global state --------------------------------------------------------------------------------------

def global_state() -> ModuleType:
    """Keras's process-wide attributes (`get_global_attribute`, `set_global_attribute`).

    Keras keeps there what has no public accessor: the global seed generator (the XLA trial puts it back,
    workers/xla_trial.py), the variables a StatelessScope left to be initialized later (the parameter count
    drops them, model_check.py) and its saving skip sets (workers/keras_speed.py)."""
    return _keras_internal("keras.src.backend.common.global_state")


def saving_attr_skipset(kind: str) -> set[str]:
    """The attributes Keras's saving skips on every object of `kind` (`Layer`, `Optimizer`, ...), as Keras
    computes them; workers/keras_speed.py caches them under the key Keras reads."""
    return _keras_internal("keras.src.saving.saving_lib", "get_attr_skipset")(kind)


# --- training ----------------------------------------------------------------------------------------------------

def array_data_adapter(x: Any, y: Any = None, **kwargs: Any) -> Any:
    """Keras's ArrayDataAdapter: the batches (shuffle, class and sample weights) `fit` makes of arrays. Tuning
    builds the same datasets itself to switch tf.data's autotuner off (workers/array_batches.py); there is no
    public way to get them."""
    return _keras_internal("keras.src.trainers.data_adapters.array_data_adapter", "ArrayDataAdapter")(x, y, **kwargs)


def train_validation_split(arrays: Any, validation_split: float) -> Any:
    """Keras's own cut of arrays for `validation_split`, so tuned datasets hold exactly fit's rows."""
    split = _keras_internal("keras.src.trainers.data_adapters.array_slicing", "train_validation_split")
    return split(arrays, validation_split=validation_split)


def model_supports_jit(model: Any) -> bool:
    """Whether Keras would compile this model with XLA (every layer supports it, op determinism off): what
    `jit_compile="auto"` resolves to, which the XLA trial must know before it tries the other setting."""
    return bool(_keras_internal("keras.src.trainers.trainer", "model_supports_jit")(model))


def all_layers(model: Any) -> list[Any]:
    """Every layer of a model, nested ones included (`Model._flatten_layers`): tuning looks for stateful ones."""
    return list(model._flatten_layers())


def distribute_strategy(model: Any) -> Any:
    """The tf.distribute strategy a model was built under (`Model._distribute_strategy`), or None."""
    return getattr(model, "_distribute_strategy", None)


def metrics_in_order(model: Any, logs: dict[str, Any]) -> list[Any]:
    """evaluate()'s list form of its logs, in Keras's order (loss first, then compiled metrics). The method is
    private, so the dict's own order stands in should a Keras release drop it."""
    ordered = getattr(model, "_flatten_metrics_in_order", None)
    as_list = ordered(logs) if ordered is not None else list(logs.values())
    return as_list if isinstance(as_list, list) else [as_list]


# --- building, reading saved models, and explaining failures (spec checker) ----------------------------------------

def model_from_legacy_config(document: dict[str, Any]) -> Any:
    """A model from a legacy `.h5` file's config, in safe mode. Such configs have no `module` keys and only Keras's
    legacy loader reads them; it takes no `safe_mode` argument, hence Keras's own scope around it."""
    scope = _keras_internal("keras.src.saving.serialization_lib", "SafeModeScope")
    from_config = _keras_internal("keras.src.legacy.saving.saving_utils", "model_from_config")
    with scope(True):
        return from_config(document)


def functional_graph(model: Any) -> Any:
    """The functional graph a model runs: a Sequential keeps it in `_functional`; a functional model is its own."""
    return getattr(model, "_functional", None) or model


def graph_node_keys(model: Any) -> set[str] | None:
    """Keras's keys of the layer calls in a model's graph (`Functional._nodes`); None where there is none."""
    nodes = getattr(functional_graph(model), "_nodes", None)
    return set(nodes) if nodes is not None else None


def layer_calls(layer: Any, graph_keys: set[str] | None) -> list[Any]:
    """A layer's calls (`_inbound_nodes`) that made outputs and belong to the graph: a Sequential rebuilds its
    graph on every `add`, so its layers also remember calls of discarded graphs."""
    make_node_key = _keras_internal("keras.src.ops.function", "make_node_key")
    return [node for index, node in enumerate(getattr(layer, "_inbound_nodes", []))
            if node.output_tensors and (graph_keys is None or make_node_key(layer, index) in graph_keys)]


def tensor_layer(tensor: Any) -> Any:
    """The layer whose call made a symbolic tensor (`_keras_history`), or None."""
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def deserializing(frame: FrameType) -> tuple[dict[str, Any], type] | None:
    """(config, class) when `frame` is Keras's `deserialize_keras_object` making an object of a class: read from
    its locals, so a failed config is named by the object Keras was making, not by its nested wrappers."""
    local = frame.f_locals
    if frame.f_code.co_name == "deserialize_keras_object" and isinstance(local.get("config"), dict) and isinstance(
            local.get("cls"), type):
        return local["config"], local["cls"]
    return None


def called_layer(frame: FrameType) -> Any:
    """The layer (not a model) whose `Layer.__call__` `frame` is, or None: a refused call is named by its layer."""
    import keras

    candidate = frame.f_locals.get("self") if frame.f_code.co_name == "__call__" else None
    if isinstance(candidate, keras.layers.Layer) and not isinstance(candidate, keras.Model):
        return candidate
    return None


def call_tensors(frame: FrameType) -> list[Any]:
    """The tensors a `Layer.__call__` frame was given: Keras's own holds `args` and `kwargs`; preprocessing
    layers override it with `inputs`."""
    import keras

    local = frame.f_locals
    values = keras.tree.flatten((local.get("args", ()), local.get("inputs"), local.get("kwargs", {})))
    return [v for v in values if hasattr(v, "shape") and hasattr(v, "dtype")]


# --- TensorFlow (TensorFlow backend only) ------------------------------------------------------------------------

def set_op_determinism(enabled: bool) -> None:
    """TensorFlow's deterministic kernels on or off. TF exports only the switch on
    (`tf.config.experimental.enable_op_determinism`); the switch off lives beside it, in private. A seeded job
    turns them on and must turn them off after, or the next job inherits kernels that are slower on GPUs."""
    config = _tensorflow_internal("tensorflow.python.framework.config", "op determinism")
    if enabled:
        config.enable_op_determinism()
    else:
        config.disable_op_determinism()


def tensorflow_seed_rng() -> Any:
    """The Python `random.Random` that TensorFlow's eager context draws op seeds from once a global seed is set
    (`context()._rng`), or None: the XLA trial puts its state back, or the job's later draws would differ."""
    context = _tensorflow_internal("tensorflow.python.eager.context", "the eager context's seed generator")
    return getattr(context.context(), "_rng", None)


def ends_with_prefetch(dataset: Any) -> bool:
    """Whether a tf.data pipeline's last op is a prefetch: tf.data names that class `_PrefetchDataset`."""
    return "Prefetch" in type(dataset).__name__
