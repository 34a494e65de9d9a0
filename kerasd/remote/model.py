"""`RemoteModel`, what `client.remote(keras_model)` returns: a Keras model whose compile, fit, evaluate and
predict run as jobs on kerasd, and whose weights and files come back from them.

    model = client.remote(keras.Sequential([...]))
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy", metrics=[...])
    history = model.fit(train_x, train_y, epochs=10, batch_size=100, validation_data=(val_x, val_y))
    model.save_weights("model.weights.h5")
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasd import arrays
from kerasd.data import Dataset
from kerasd.errors import ValidationError
from kerasd.progress import FitDisplay
from kerasd.remote import arguments as translate
from kerasd.remote import files, results
from kerasd.remote.keras_objects import model_document, output_structure, sequential_spec
from kerasd.remote.running import checked, follow
from kerasd.remote.uploads import Uploader


class RemoteModel:
    """A Keras model trained on the server. `client.remote(model, seed=None)`.

    Weights start from the local model's when it is built (so a local initialization or pretrained weights
    carry over), then follow the jobs: each fit continues from the last one's trained weights.
    """

    def __init__(self, client: Any, model: Any, *, seed: int | None = None) -> None:
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
        self.history: results.History | None = None
        self._ensure_model()

    def __repr__(self) -> str:
        return f"<kerasd.RemoteModel {self.name!r} model_id={self.model_id} on {self._client.base_url}>"

    @property
    def trained_job_id(self) -> str | None:
        """The fit job whose weights this model holds (None before a fit): `client.registry.register(model, ...)`
        makes a version of it."""
        return self._trained_job

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

    def _run_job(self, body: dict[str, Any], display: FitDisplay | None, verbose: int) -> dict[str, Any]:
        if self.seed is not None:
            body.setdefault("seed", self.seed)
        self.last_job = self._client.jobs.create(body)
        self.last_job = follow(self._client, self.last_job["id"], display, verbose)
        return checked(self.last_job)

    # --- Keras's Model methods ---------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None, metrics: Any = None,
                weighted_metrics: Any = None, run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile: Any = "auto", auto_scale_loss: bool = True, **removed: Any) -> None:
        """`Model.compile`: recorded and sent with each job (the server checks it when a job is submitted)."""
        self._compile = translate.compile_document(
            optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics,
            weighted_metrics=weighted_metrics, run_eagerly=run_eagerly, steps_per_execution=steps_per_execution,
            jit_compile=jit_compile, removed=removed)
        self._compile_given = {"optimizer": optimizer, "loss": loss, "metrics": metrics}

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: list[Any] | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: dict[int, float] | None = None,
            sample_weight: Any = None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1, *, name: str | None = None, tags: list[str] | None = None,
            notes: str | None = None) -> results.History:
        """`Model.fit` as a fit job; prints Keras's progress bar from the job's live events. `name`, `tags` and
        `notes` (kerasd's, not Keras's) name the run for finding and comparing it later."""
        if self._compile is None:
            raise RuntimeError("You must call `compile()` before using the model.")
        if validation_batch_size is not None:
            raise ValueError("validation_batch_size is not supported by kerasd jobs; batch validation_data "
                             "with a kerasd.data.Dataset instead")
        level = translate.verbosity(verbose)
        self._build_for(x)
        arguments = translate.fit_arguments(
            Uploader(self._client, level), x, y, epochs=epochs, sample_weight=sample_weight,
            class_weight=class_weight, validation_data=validation_data, batch_size=batch_size,
            validation_split=validation_split, shuffle=shuffle, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps, validation_freq=validation_freq)
        declared = translate.callback_specs(callbacks)
        body = {"kind": "fit", **self._start_weights(), "compile": self._compile, "fit": arguments}
        body.update({key: value for key, value in (("name", name), ("tags", tags), ("notes", notes))
                     if value is not None})
        if declared:
            body["callbacks"] = [spec for spec, _path in declared]
        steps_hint = steps_per_epoch or translate.steps_of(x, batch_size or 32, validation_split)
        job = self._run_job(body, FitDisplay(epochs=epochs, verbose=level, steps=steps_hint), level)
        self._trained_job = job["id"]
        self._weights_id = None
        self._weights_file = None
        files.deliver_callback_files(self._client, job, declared, level, Path(self._workdir.name))
        self.history = results.History(job, {"verbose": level, "epochs": epochs, "steps": steps_per_epoch}, self)
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Any = None,
                 return_dict: bool = False) -> Any:
        """`Model.evaluate` as an evaluate job: a scalar, a list, or a dict with `return_dict=True`."""
        if callbacks:
            raise ValueError("evaluate runs on the server without callbacks")
        level = translate.verbosity(verbose)
        self._build_for(x)
        arguments = translate.run_arguments(Uploader(self._client, level), x, y=y, sample_weight=sample_weight,
                                           batch_size=batch_size, steps=steps)
        body: dict[str, Any] = {"kind": "evaluate", **self._start_weights(), "evaluate": arguments}
        if self._compile is not None:
            body["compile"] = self._compile
        job = self._run_job(body, None, level)
        results.show_done(job, steps or translate.steps_of(x, batch_size or 32),
                          results.evaluation(job, return_dict=True), level)
        return results.evaluation(job, return_dict=return_dict)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Any = None) -> Any:
        """`Model.predict` as a predict job: an array, or for several outputs a list of arrays (a dict keyed as
        the outputs for a model built with a dict of outputs), as Keras returns them."""
        if callbacks:
            raise ValueError("predict runs on the server without callbacks")
        level = translate.verbosity(verbose)
        self._build_for(x)
        arguments = translate.run_arguments(Uploader(self._client, level), x, batch_size=batch_size, steps=steps)
        job = self._run_job({"kind": "predict", **self._start_weights(), "predict": arguments}, None, level)
        names = {item["name"] for item in self._client.jobs.artifacts(job["id"])}
        name = "predictions.npy" if "predictions.npy" in names else "predictions.npz"
        content = self._client.jobs.artifact(job["id"], name, verbose=level)
        found = arrays.load(content, "npz" if name.endswith(".npz") else "npy")
        results.show_done(job, steps or translate.steps_of(x, batch_size or 32), None, level)
        return results.predictions(found, output_structure(self._local))

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
        made = {item["name"] for item in self._client.jobs.artifacts(self._trained_job)} \
            if self._trained_job is not None else set()
        if artifact in made:
            self._client.jobs.artifact(self._trained_job, artifact, target, verbose=0)
        else:
            # A legacy .h5 is made on the server only for jobs that ask for it: Keras writes it here from the
            # trained model, as it would locally.
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
        emit = print_fn or (lambda line, **_: print(line))
        for line in files.summary_lines(self._ensure_model(), self.name, line_length):
            emit(line)
