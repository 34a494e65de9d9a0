"""`client.remote(keras_model)`: a Keras model whose compile, fit, evaluate and predict run on kerasd.

    model = keras.Sequential([...])
    model = client.remote(model)
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy", metrics=[...])
    history = model.fit(train_x, train_y, epochs=10, batch_size=100, validation_data=(val_x, val_y))
    model.save_weights("model.weights.h5")

Keras's own argument names and objects are taken: optimizer, loss and metric objects or names are sent as
their serialized configs, callbacks as declared callback specs, numpy arrays as uploaded datasets (once
per content) and `kerasd.data.Dataset` pipelines as the server's pipeline spec. Keras is imported only here.
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kerasd import arrays
from kerasd.data import Dataset
from kerasd.errors import APIError, JobCancelled, JobFailed, NotFound, ValidationError
from kerasd.progress import FitDisplay, ProgressBar

SUPPORTED_CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint", "TensorBoard", "CSVLogger",
                       "TerminateOnNaN", "LearningRateScheduler")
# Callback arguments that name local files: the worker writes its own, which come back as artifacts, and
# the SDK puts them where the callback said.
CALLBACK_PATHS = {"ModelCheckpoint": "filepath", "TensorBoard": "log_dir", "CSVLogger": "filename"}
# Where Keras keeps a constructor argument under another attribute name.
CALLBACK_ATTRIBUTES = {("CSVLogger", "separator"): "sep"}
REMOVED_COMPILE_ARGUMENTS = {"sample_weight_mode", "target_tensors", "distribute"}
CALLBACK_SKIP = {("TensorBoard", "embeddings_metadata"), ("TensorBoard", "profile_batch")}


def _keras() -> Any:
    try:
        import keras
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise ImportError("client.remote(...) needs Keras installed locally: pip install 'kerasd[keras]' "
                          "tensorflow (or another Keras backend). The plain resources (client.models, .datasets, "
                          ".jobs) work without it.") from exc
    return keras


# --- Keras objects as configs ----------------------------------------------------------------------

def _tidy_float(value: float) -> float:
    """Keras stores hyperparameters as float32: 0.0010000000474974513 goes back as 0.001."""
    narrow = np.float32(value)
    return float(str(narrow)) if float(narrow) == value else value


def _tidy(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return _tidy_float(value)
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def _function_name(name: str) -> str:
    """TF's aliases of Keras functions (`tf.nn.softmax` serializes as `softmax_v2`)."""
    keras = _keras()
    for candidate in (name, name.removesuffix("_v2"), name.removesuffix("_v1")):
        if any(hasattr(module, candidate) for module in (keras.activations, keras.losses, keras.metrics)):
            return candidate
    return name


def serialize(value: Any, what: str) -> Any:
    """A compile argument as the job spec takes it: names stay names, objects become {class_name, config}."""
    keras = _keras()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(key): serialize(item, f"{what}[{key!r}]") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [serialize(item, f"{what}[{index}]") for index, item in enumerate(value)]
    try:
        document = keras.saving.serialize_keras_object(value)
    except Exception as exc:
        raise TypeError(f"{what}: {value!r} cannot be sent to kerasd ({exc}); use a Keras built-in by name or "
                        "object, or a server-side plugin") from None
    if isinstance(document, str):
        return _function_name(document)
    if not isinstance(document, dict) or "class_name" not in document:
        raise TypeError(f"{what}: {value!r} is not a Keras object kerasd can send")
    if document["class_name"] == "function":
        return _function_name(str(document.get("config")))
    if document.get("class_name") == "__lambda__" or (
            inspect.isfunction(value) and getattr(value, "__name__", "") == "<lambda>"):
        raise TypeError(f"{what}: a lambda is code; kerasd sends names and configs only")
    sent = {"class_name": document["class_name"], "config": _tidy(document.get("config") or {})}
    registered = document.get("registered_name")
    if registered and registered != document["class_name"]:
        sent["registered_name"] = registered
    return sent


def _normalize_model_config(node: Any) -> Any:
    """Model JSON as the server's allowlist reads it: TF function aliases become Keras activation names."""
    if isinstance(node, dict):
        if node.get("class_name") == "function" and isinstance(node.get("config"), str):
            return _function_name(node["config"])
        return {key: _normalize_model_config(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_normalize_model_config(item) for item in node]
    return node


def model_document(model: Any) -> dict[str, Any]:
    """`model.to_json()`, normalized."""
    return _normalize_model_config(json.loads(model.to_json()))


def sequential_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    """A Sequential of built-in layers in kerasd's spec form; None for any other model."""
    if document.get("class_name") != "Sequential":
        return None
    config = document.get("config", {})
    input_shape = None
    layers = []
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape") or layer.get("config", {}).get("batch_input_shape")
            input_shape = list(shape[1:]) if shape else None
            continue
        if layer.get("registered_name") not in (None, layer.get("class_name")):
            return None
        layers.append({"class_name": layer["class_name"], "config": layer.get("config", {})})
    if input_shape is None and config.get("build_input_shape"):
        input_shape = list(config["build_input_shape"][1:])
    spec: dict[str, Any] = {"type": "sequential", "name": config.get("name", "sequential"), "layers": layers}
    if input_shape is not None:
        spec["input_shape"] = input_shape
    return spec


def callback_spec(callback: Any) -> tuple[dict[str, Any], str | None]:
    """A Keras callback instance as `{class_name, config}` (arguments that differ from Keras's defaults),
    and the local path it names (where its artifact is put after the job)."""
    name = type(callback).__name__
    keras = _keras()
    if name not in SUPPORTED_CALLBACKS or not isinstance(callback, keras.callbacks.Callback):
        raise TypeError(f"callback {name}: kerasd runs the declared callbacks {', '.join(SUPPORTED_CALLBACKS)}; "
                        "a custom Callback is code and cannot be sent (its events are in client.jobs.events)")
    config: dict[str, Any] = {}
    local_path = None
    for parameter in inspect.signature(type(callback).__init__).parameters.values():
        if parameter.name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if (name, parameter.name) in CALLBACK_SKIP:
            continue
        attribute = CALLBACK_ATTRIBUTES.get((name, parameter.name), parameter.name)
        if not hasattr(callback, attribute):
            continue
        value = getattr(callback, attribute)
        if CALLBACK_PATHS.get(name) == parameter.name:
            local_path = str(value) if value else None
            continue
        if parameter.name == "schedule":
            if not isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
                raise TypeError("LearningRateScheduler: give `schedule` as a keras.optimizers.schedules "
                                "LearningRateSchedule (evaluated at each epoch); a Python function is code")
            config["schedule"] = serialize(value, "schedule")
            continue
        if parameter.default is not inspect.Parameter.empty and _same(value, parameter.default):
            continue
        if isinstance(value, float):
            value = _tidy_float(value)
        if isinstance(value, str | bool | int | float) or value is None:
            config[parameter.name] = value
    if name == "ModelCheckpoint":
        config["save_weights_only"] = bool(getattr(callback, "save_weights_only", False))
    return {"class_name": name, "config": config}, local_path


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:
        return False


# --- results -----------------------------------------------------------------------------------------

class History:
    """What `fit` returns, as Keras's History: `history` (metric -> values per epoch), `epoch`, `params`;
    `job` is the job document."""

    def __init__(self, job: dict[str, Any], params: dict[str, Any], model: RemoteModel) -> None:
        self.job = job
        self.history: dict[str, list[float]] = dict(job.get("history") or {})
        self.epoch: list[int] = [row.get("epoch") for row in job.get("epochs") or []]
        self.params = params
        self.model = model

    def __repr__(self) -> str:
        return f"<kerasd History job={self.job.get('id')} epochs={len(self.epoch)} keys={sorted(self.history)}>"


def _verbosity(verbose: Any) -> int:
    return 1 if verbose == "auto" else int(verbose)


class RemoteModel:
    """A Keras model trained on the server. `client.remote(model, seed=None)`.

    Weights start from the local model's when it is built (so a local initialization or pretrained weights
    carry over), then follow the jobs: each fit continues from the last one's trained weights.
    """

    def __init__(self, client: Any, model: Any, *, seed: int | None = None) -> None:
        keras = _keras()
        if not isinstance(model, keras.Model):
            raise TypeError(f"client.remote takes a keras.Model; got {type(model).__name__}")
        self._client = client
        self._local = model
        self.seed = seed
        self._workdir = tempfile.TemporaryDirectory(prefix="kerasd-remote-")
        self._architecture: str | None = None
        self._model: dict[str, Any] | None = None
        self._compile: dict[str, Any] | None = None
        self._compile_given: dict[str, Any] | None = None
        self._trained_job: str | None = None
        self._weights_id: str | None = None
        self._weights_file: Path | None = None
        self.last_job: dict[str, Any] | None = None
        self.history: History | None = None
        self._ensure_model()

    def __repr__(self) -> str:
        return f"<kerasd.RemoteModel {self.name!r} model_id={self.model_id} on {self._client.base_url}>"

    # --- what Keras users read off a model -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self._local.name

    @property
    def layers(self) -> list[Any]:
        return self._local.layers

    @property
    def built(self) -> bool:
        return bool(self._local.built)

    @property
    def model_id(self) -> str:
        return self._ensure_model()["id"]

    @property
    def local_model(self) -> Any:
        """The Keras model this remote was made from (its weights are not the trained ones: see pull())."""
        return self._local

    def add(self, layer: Any, *args: Any, **kwargs: Any) -> None:
        """`Sequential.add`: the server's copy of the model is replaced before the next job."""
        self._local.add(layer, *args, **kwargs)

    def pop(self, *args: Any, **kwargs: Any) -> Any:
        return self._local.pop(*args, **kwargs)

    # --- the model on the server ---------------------------------------------------------------------

    def _ensure_model(self) -> dict[str, Any]:
        architecture = self._local.to_json()
        if self._model is not None and architecture == self._architecture:
            return self._model
        document = model_document(self._local)
        try:
            self._model = self._client.models.create(document)
        except ValidationError:
            # A server that takes only kerasd's own spec forms: a Sequential of built-in layers still goes.
            spec = sequential_spec(document)
            if spec is None:
                raise
            self._model = self._client.models.create(spec)
        self._architecture = architecture
        # A new architecture: earlier weights do not fit it.
        self._trained_job = None
        self._weights_id = None
        self._weights_file = None
        return self._model

    def _build_for(self, x: Any) -> None:
        """Build an unbuilt Sequential for the data's shape, as Keras's fit does on first sight of data.

        The model the server stores then has its input shape, so every later job (evaluate, predict, a
        second fit) can start from trained weights, and the local initialization carries over."""
        if self._local.built or not hasattr(self._local, "add"):
            return
        sample = x.x if isinstance(x, Dataset) else x
        if isinstance(sample, dict | list | tuple):
            return
        try:
            shape = arrays.as_array(sample, "x").shape
        except TypeError:
            return
        if len(shape) >= 2:
            self._local.build((None, *shape[1:]))

    def _start_weights(self) -> dict[str, Any]:
        """Where the next job's weights come from, as job fields."""
        self._ensure_model()
        source: dict[str, Any] = {"model_id": self._model["id"]}
        if self._trained_job is not None:
            source["initial_weights"] = {"job_id": self._trained_job}
            return source
        server_built = bool((self._model.get("summary") or {}).get("built"))
        if self._weights_id is None and server_built and self._local.built and self._local.weights:
            path = Path(self._workdir.name) / "local.weights.h5"
            self._local.save_weights(path)
            self._set_uploaded_weights(path)
        if self._weights_id is not None:
            source["initial_weights"] = {"weights_id": self._weights_id}
        return source

    def _set_uploaded_weights(self, path: Path) -> None:
        keep = Path(self._workdir.name) / "current.weights.h5"
        if path.resolve() != keep.resolve():
            shutil.copyfile(path, keep)
        self._weights_id = self._client.weights.upload(keep, verbose=0)["id"]
        self._weights_file = keep
        self._trained_job = None

    def _ref(self, value: Any, role: str, verbose: int) -> dict[str, Any]:
        array = arrays.as_array(value, role)
        dataset = self._client.datasets.upload(array, filename=f"{role.replace('.', '_')}.npy", verbose=verbose)
        return {"dataset_id": dataset["id"]}

    def _inputs(self, value: Any, role: str, verbose: int) -> Any:
        if value is None:
            return None
        if isinstance(value, Dataset):
            return value.to_spec(lambda array, name: self._ref(array, f"{role}.{name}", verbose))
        if type(value).__module__.startswith("tensorflow") and "Dataset" in type(value).__name__:
            raise TypeError(f"{role}: a tf.data.Dataset runs locally; use kerasd.data.Dataset (the same calls) "
                            "so the worker builds the pipeline from uploaded arrays")
        if isinstance(value, dict):
            return {str(name): self._ref(item, f"{role}.{name}", verbose) for name, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._ref(item, f"{role}{index}", verbose) for index, item in enumerate(value)]
        return self._ref(value, role, verbose)

    def _validation(self, value: Any, verbose: int) -> Any:
        if value is None or isinstance(value, Dataset):
            return self._inputs(value, "validation", verbose)
        if not isinstance(value, tuple | list) or len(value) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val), (x_val, y_val, val_sample_weight) or a "
                             "kerasd.data.Dataset")
        found = {"x": self._inputs(value[0], "val_x", verbose), "y": self._inputs(value[1], "val_y", verbose)}
        if len(value) == 3 and value[2] is not None:
            found["sample_weight"] = self._ref(value[2], "val_sample_weight", verbose)
        return found

    def _run_job(self, body: dict[str, Any], display: Any) -> dict[str, Any]:
        if self.seed is not None:
            body.setdefault("seed", self.seed)
        job = self._client.jobs.create(body)
        self.last_job = job
        try:
            for event in self._client.jobs.events(job["id"]):
                if display is not None:
                    display.handle(event)
        except KeyboardInterrupt:
            # Ctrl-C stops training in Keras; here it also stops the job on the server.
            try:
                self._client.jobs.cancel(job["id"])
            except APIError:
                pass
            raise
        job = self._client.jobs.wait(job["id"])
        self.last_job = job
        if job["status"] == "failed":
            raise JobFailed(job)
        if job["status"] == "cancelled":
            raise JobCancelled(job)
        return job

    # --- Keras's Model methods ---------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None, metrics: Any = None,
                weighted_metrics: Any = None, run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile: Any = "auto", auto_scale_loss: bool = True, **removed: Any) -> None:
        """`Model.compile`: recorded and sent with each job (the server checks it when a job is submitted)."""
        document: dict[str, Any] = {"optimizer": serialize(optimizer, "optimizer"), "loss": serialize(loss, "loss")}
        if metrics is not None:
            document["metrics"] = serialize(list(metrics) if isinstance(metrics, tuple) else metrics, "metrics")
        if loss_weights is not None:
            document["loss_weights"] = loss_weights
        if weighted_metrics is not None:
            document["weighted_metrics"] = serialize(weighted_metrics, "weighted_metrics")
        if run_eagerly:
            document["run_eagerly"] = True
        if steps_per_execution != 1:
            document["steps_per_execution"] = steps_per_execution
        if jit_compile != "auto":
            document["jit_compile"] = jit_compile
        # Arguments Keras 3 removed: sent on, so the server's answer says what replaced them.
        unknown = set(removed) - REMOVED_COMPILE_ARGUMENTS
        if unknown:
            raise TypeError(f"compile() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        document.update(removed)
        self._compile = document
        self._compile_given = {"optimizer": optimizer, "loss": loss, "metrics": metrics}

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: list[Any] | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: dict[int, float] | None = None,
            sample_weight: Any = None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1) -> History:
        """`Model.fit` as a fit job; prints Keras's progress bar from the job's live events."""
        if self._compile is None:
            raise RuntimeError("You must call `compile()` before using the model.")
        if validation_batch_size is not None:
            raise ValueError("validation_batch_size is not supported by kerasd jobs; batch validation_data "
                             "with a kerasd.data.Dataset instead")
        level = _verbosity(verbose)
        self._build_for(x)
        arguments: dict[str, Any] = {"x": self._inputs(x, "x", level), "epochs": epochs}
        if y is not None:
            arguments["y"] = self._inputs(y, "y", level)
        optional = {"batch_size": (batch_size, None), "validation_split": (validation_split, 0.0),
                    "shuffle": (shuffle, True), "initial_epoch": (initial_epoch, 0),
                    "steps_per_epoch": (steps_per_epoch, None), "validation_steps": (validation_steps, None),
                    "validation_freq": (validation_freq, 1)}
        arguments.update({name: value for name, (value, default) in optional.items() if value != default})
        if class_weight is not None:
            arguments["class_weight"] = {str(int(k)): float(v) for k, v in class_weight.items()}
        if sample_weight is not None:
            arguments["sample_weight"] = self._ref(sample_weight, "sample_weight", level)
        if validation_data is not None:
            arguments["validation_data"] = self._validation(validation_data, level)
        specs, paths = [], []
        for callback in callbacks or []:
            spec, path = callback_spec(callback)
            specs.append(spec)
            paths.append((spec, path))
        body = {"kind": "fit", **self._start_weights(), "compile": self._compile, "fit": arguments}
        if specs:
            body["callbacks"] = specs
        steps_hint = steps_per_epoch or _steps(x, batch_size or 32, validation_split)
        job = self._run_job(body, FitDisplay(epochs=epochs, verbose=level, steps=steps_hint))
        self._trained_job = job["id"]
        self._weights_id = None
        self._weights_file = None
        self._deliver_callback_files(job, paths, level)
        params = {"verbose": level, "epochs": epochs, "steps": steps_per_epoch}
        self.history = History(job, params, self)
        return self.history

    def _deliver_callback_files(self, job: dict[str, Any], callbacks: list[tuple[dict[str, Any], str | None]],
                                verbose: int) -> None:
        result = job.get("result") or {}
        stopped = result.get("early_stopping")
        for spec, path in callbacks:
            name = spec["class_name"]
            if name == "EarlyStopping" and stopped and spec["config"].get("verbose", 0) and verbose:
                print(f"Epoch {stopped.get('stopped_epoch')}: early stopping")
            if not path:
                continue
            try:
                if name == "TensorBoard":
                    archive = Path(self._workdir.name) / "tensorboard.tar.gz"
                    self._client.jobs.artifact(job["id"], "tensorboard.tar.gz", archive, verbose=0)
                    _extract_logs(archive, Path(path))
                elif name == "CSVLogger":
                    self._client.jobs.artifact(job["id"], "history.csv", path, verbose=0)
                elif name == "ModelCheckpoint":
                    artifact = ("checkpoint.weights.h5" if spec["config"].get("save_weights_only")
                                else "checkpoint.keras")
                    self._client.jobs.artifact(job["id"], artifact, path, verbose=0)
            except NotFound:
                warnings.warn(f"{name}: job {job['id']} produced no file for {path}", stacklevel=3)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Any = None,
                 return_dict: bool = False) -> Any:
        """`Model.evaluate` as an evaluate job: a scalar, a list, or a dict with `return_dict=True`."""
        if callbacks:
            raise ValueError("evaluate runs on the server without callbacks")
        level = _verbosity(verbose)
        self._build_for(x)
        arguments: dict[str, Any] = {"x": self._inputs(x, "x", level)}
        if y is not None:
            arguments["y"] = self._inputs(y, "y", level)
        if batch_size is not None:
            arguments["batch_size"] = batch_size
        if steps is not None:
            arguments["steps"] = steps
        if sample_weight is not None:
            arguments["sample_weight"] = self._ref(sample_weight, "sample_weight", level)
        body: dict[str, Any] = {"kind": "evaluate", **self._start_weights(), "evaluate": arguments}
        if self._compile is not None:
            body["compile"] = self._compile
        job = self._run_job(body, None)
        evaluation = (job.get("result") or {}).get("evaluation") or {}
        metrics = dict(evaluation.get("metrics") or {})
        # Keras lists the loss first, then the metrics.
        names = [name for name in evaluation.get("names") or metrics if name in metrics]
        names = sorted(names, key=lambda name: name != "loss")
        values = [metrics[name] for name in names]
        if level:
            steps_run = steps or _steps(x, batch_size or 32)
            bar = ProgressBar(steps_run, verbose=level)
            bar.update(steps_run or 0, metrics, finalize=True, elapsed_s=_duration(job))
        if return_dict:
            return metrics
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Any = None) -> Any:
        """`Model.predict` as a predict job: a numpy array (a list of arrays for several outputs)."""
        if callbacks:
            raise ValueError("predict runs on the server without callbacks")
        level = _verbosity(verbose)
        self._build_for(x)
        arguments: dict[str, Any] = {"x": self._inputs(x, "x", level)}
        if batch_size is not None:
            arguments["batch_size"] = batch_size
        if steps is not None:
            arguments["steps"] = steps
        job = self._run_job({"kind": "predict", **self._start_weights(), "predict": arguments}, None)
        names = {item["name"] for item in self._client.jobs.artifacts(job["id"])}
        name = "predictions.npy" if "predictions.npy" in names else "predictions.npz"
        content = self._client.jobs.artifact(job["id"], name, verbose=level)
        predictions = arrays.load(content, "npz" if name.endswith(".npz") else "npy")
        if level:
            steps_run = steps or _steps(x, batch_size or 32)
            ProgressBar(steps_run, verbose=level).update(steps_run or 0, finalize=True, elapsed_s=_duration(job))
        if isinstance(predictions, dict):
            return list(predictions.values())
        return predictions

    # --- weights and files -------------------------------------------------------------------------

    def save_weights(self, filepath: str | Path, overwrite: bool = True) -> None:
        """The current weights as Keras writes them (`.weights.h5`, as Keras 3 requires)."""
        if not str(filepath).endswith(".weights.h5"):
            raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={filepath}")
        target = Path(filepath)
        if target.exists() and not overwrite:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._trained_job is not None:
            self._client.jobs.artifact(self._trained_job, "weights.h5", target, verbose=0)
        elif self._weights_file is not None:
            shutil.copyfile(self._weights_file, target)
        else:
            self._local.save_weights(target)

    def load_weights(self, filepath: str | Path, skip_mismatch: bool = False, **kwargs: Any) -> None:
        """Weights from a `.weights.h5` file (uploaded; the next job starts from them)."""
        if not str(filepath).endswith(".weights.h5"):
            raise ValueError("kerasd loads weights from `.weights.h5` files (what Keras 3's save_weights "
                             f"writes). Received: filepath={filepath}")
        if not Path(filepath).is_file():
            raise FileNotFoundError(f"no such weights file: {filepath}")
        self._ensure_model()
        self._set_uploaded_weights(Path(filepath))

    def get_weights(self) -> list[np.ndarray]:
        return self.pull().get_weights()

    def set_weights(self, weights: list[Any]) -> None:
        model = self.pull()
        model.set_weights(weights)
        path = Path(self._workdir.name) / "set.weights.h5"
        model.save_weights(path)
        self._set_uploaded_weights(path)

    def pull(self) -> Any:
        """A local Keras model with the current weights (the last fit's trained weights, compiled as on the
        server, when there was one)."""
        keras = _keras()
        self._ensure_model()
        if self._trained_job is not None:
            names = {item["name"] for item in self._client.jobs.artifacts(self._trained_job)}
            if "model.keras" in names:
                path = Path(self._workdir.name) / "pulled.keras"
                self._client.jobs.artifact(self._trained_job, "model.keras", path, verbose=0)
                return keras.models.load_model(path)
            architecture = self._client.jobs.artifact(self._trained_job, "architecture.json", verbose=0)
            model = keras.models.model_from_json(architecture.decode())
            path = Path(self._workdir.name) / "pulled.weights.h5"
            self._client.jobs.artifact(self._trained_job, "weights.h5", path, verbose=0)
            model.load_weights(path)
            return model
        model = keras.models.clone_model(self._local)
        if self._weights_file is not None:
            with warnings.catch_warnings():
                # A .weights.h5 from a compiled model carries its optimizer's state; this copy has none yet.
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(self._weights_file)
        elif self._local.built:
            model.set_weights(self._local.get_weights())
        return model

    def save(self, filepath: str | Path, overwrite: bool = True, **kwargs: Any) -> None:
        """The whole model: `.keras` (Keras 3's format) or `.h5` (legacy HDF5, tutorial §5.3)."""
        suffix = Path(filepath).suffix.lower()
        if suffix not in (".keras", ".h5", ".hdf5"):
            raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` extension for "
                             "the native Keras format (recommended) or a `.h5` extension. Use "
                             f"`model.export(filepath)` if you want to export a SavedModel. filepath={filepath}")
        target = Path(filepath)
        if target.exists() and not overwrite:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        artifact = "model.keras" if suffix == ".keras" else "model.h5"
        if self._trained_job is not None:
            self._client.jobs.artifact(self._trained_job, artifact, target, verbose=0)
        else:
            self.pull().save(target)

    def export(self, filepath: str | Path, format: str = "tf_saved_model", **kwargs: Any) -> None:
        """SavedModel for TF Serving, made by a worker: the fit job must have asked for `savedmodel.zip`."""
        raise NotImplementedError("ask the fit job for the 'savedmodel.zip' artifact: "
                                  "client.jobs.artifact(job_id, 'savedmodel.zip', path)")

    def to_json(self, **kwargs: Any) -> str:
        """The model's Keras JSON, as the server holds it (after a fit: the trained, built model's)."""
        if self._trained_job is not None:
            return self._client.jobs.artifact(self._trained_job, "architecture.json", verbose=0).decode()
        return self._client.models.architecture(self.model_id, format="json")

    def to_yaml(self) -> str:
        """Keras removed `to_yaml`; the server writes the same config as YAML."""
        if self._trained_job is not None:
            return self._client.jobs.artifact(self._trained_job, "architecture.yaml", verbose=0).decode()
        return self._client.models.architecture(self.model_id, format="yaml")

    def summary(self, line_length: int | None = None, positions: Any = None, print_fn: Any = None,
                **kwargs: Any) -> None:
        """The server's summary of the model: layers, output shapes, parameter counts."""
        summary = self._ensure_model().get("summary") or {}
        width = line_length or 78
        emit = print_fn or (lambda line, **_: print(line))
        columns = (34, 26, width - 60)
        lines = [f'Model: "{self._model.get("name") or self.name}"  (kerasd model {self._model["id"]})',
                 "━" * width,
                 f"{'Layer (type)':<{columns[0]}}{'Output Shape':<{columns[1]}}{'Param #':>{columns[2]}}",
                 "━" * width]
        for layer in summary.get("layers", []):
            shape = layer.get("output_shape")
            shown = "?" if shape is None else "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
            params = layer.get("params")
            lines.append(f"{layer.get('name', '')} ({layer.get('class_name', '')})"[:columns[0] - 1].ljust(columns[0])
                         + shown.ljust(columns[1]) + (f"{params:,}" if params is not None else "?").rjust(columns[2]))
        lines.append("━" * width)
        if summary.get("built", True) and summary.get("total_params") is not None:
            lines += [f" Total params: {summary['total_params']:,}",
                      f" Trainable params: {summary.get('trainable_params', 0):,}",
                      f" Non-trainable params: {summary.get('non_trainable_params', 0):,}"]
        else:
            lines.append(" " + (summary.get("note") or "the model is built when it first sees data"))
        for line in lines:
            emit(line)


def _extract_logs(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        top = {member.name.split("/", 1)[0] for member in members}
        for member in members:
            if member.issym() or member.islnk() or member.name.startswith("/") or ".." in member.name:
                raise ValueError(f"refusing to extract {member.name!r} from the job's TensorBoard logs")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target / "_kerasd", filter="data")
        else:  # Python 3.11 before 3.11.4: the members were checked above
            tar.extractall(target / "_kerasd")
    staging = target / "_kerasd"
    # The archive holds one directory (the worker's log_dir); its content goes where the callback said.
    inner = staging / next(iter(top)) if len(top) == 1 and (staging / next(iter(top))).is_dir() else staging
    for item in inner.iterdir():
        destination = target / item.name
        if destination.exists():
            shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
        shutil.move(str(item), destination)
    shutil.rmtree(staging, ignore_errors=True)


def _steps(x: Any, batch_size: int, validation_split: float = 0.0) -> int | None:
    """Batches per epoch as Keras counts them, for the progress bar until the worker says."""
    if isinstance(x, Dataset):
        count = x.cardinality()
        return count if count > 0 else None
    try:
        first = next(iter(x.values())) if isinstance(x, dict) else (x[0] if isinstance(x, list | tuple) else x)
        rows = len(first)
    except (TypeError, StopIteration):
        return None
    if validation_split:
        rows = math.ceil(rows * (1.0 - validation_split))
    return -(-rows // batch_size)


def _duration(job: dict[str, Any]) -> float | None:
    from datetime import datetime

    try:
        started = datetime.fromisoformat(job["started_at"])
        finished = datetime.fromisoformat(job["finished_at"])
        return (finished - started).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None
