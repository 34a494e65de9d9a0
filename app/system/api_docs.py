"""The OpenAPI document as the user's job dashboard (/docs): what each tag is for, a description for every
route, and named request examples taken from the tutorial's sections (seed/keras-quickstart.zh.md).

A route's own `description=` wins; the texts here fill in routes that have only a summary, so that the
whole API reads as one guide. tests/test_dashboard.py checks that every operation ends up tagged and
described and that every example here is accepted by the running API.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

# What each tag of the API is for, in the order the documentation lists them.
TAG_DESCRIPTIONS = {
    "system": "Liveness, readiness and versions: the tutorial's §1 "
              "(`tf.__version__`, `keras.__version__`) for the server and its workers.",
    "models": "Keras models from specs (tutorial §2, §4): each layer by `class_name` "
              "and Keras's own arguments. The answer is the model's summary; "
              "`/architecture` gives the canonical Keras JSON or YAML (§5.2).",
    "datasets": "numpy arrays the jobs train on: upload a `.npz` of named arrays "
                "(`np.savez(f, train_x=..., train_y=...)`) or one `.npy`; each "
                "is stored once per sha256.",
    "jobs": "`compile` + `fit`, `evaluate` or `predict` (tutorial §3, §4.4) run by a "
            "worker. Follow a job with `GET /v1/jobs/{id}/events`, then take back its "
            "artifacts (§5): `weights.h5`, `model.keras`, `architecture.json`, ...",
    "events": "Each job's progress as typed events (schema version 1): Server-Sent "
              "Events with replay, for late subscribers and reconnects.",
    "weights": "Uploaded `.weights.h5` files to start jobs from (tutorial §5.1, "
               "`load_weights`).",
    "plugins": "Custom layers and subclassed models (tutorial §4.2, §4.3) installed "
               "on the server; specs name them, clients never send code.",
    "dashboard": "Pages for people: this documentation and the live dashboard.",
    "tenants": "Who owns what: every model, dataset and job belongs to the tenant of the "
               "API key that made it. Your own tenant's quotas and usage; tenants and "
               "keys for admin keys.",
    "webhooks": "Be told when your jobs end: kerasd's workers POST signed JSON "
                "(`X-Kerasd-Signature`, HMAC-SHA256 of the body with the hook's secret) to "
                "your URL, retry failures with growing waits, and record every attempt.",
    "sweeps": "Hyperparameter searches whose trials are ordinary jobs: a base job, a space of "
              "paths into it (`compile.optimizer.config.learning_rate`, `fit.batch_size`, "
              "`model.layers[0].units`), an objective, Optuna's samplers and pruners; a pruned "
              "trial stops at an epoch's end and ends `pruned`.",
    "registry": "Named models and their immutable versions, each made from a succeeded fit "
                "job with its lineage and its own files; aliases (`champion`) that move in "
                "one statement; exports proven to predict what Keras predicts. Jobs take a "
                "version as `model_version: \"name/3\"` or `\"name@champion\"`.",
}
TAGS = [{"name": name, "description": text} for name, text in TAG_DESCRIPTIONS.items()]

DESCRIPTIONS = {
    ("get", "/health"): "`200 {\"status\": \"ok\"}` while the API process answers; it checks nothing else "
                        "(use `/ready` for that).",
    ("get", "/version"): "The tutorial's first step (§1), for the service: kerasd's version, the TensorFlow "
                         "and Keras versions and backend that build models, and each live worker with its own "
                         "versions and devices.",
    ("get", "/ready"): "`200` when SQL and Redis answer and at least one worker has announced itself; "
                       "otherwise `503`, with each check's state, so a load balancer waits for a usable "
                       "service.",
    ("get", "/v1/models"): "Newest first, `limit` and `offset` to page; each with its spec and summary.",
    ("get", "/v1/models/{model_id}"): "The spec as it was sent and the summary Keras produced: layers, output "
                                      "shapes and parameter counts (what `model.summary()` prints).",
    ("delete", "/v1/models/{model_id}"): "Only a model that no job uses can go (`409` names the jobs); "
                                         "delete those first.",
    ("get", "/v1/datasets"): "Newest first, `limit` and `offset` to page.",
    ("get", "/v1/datasets/{dataset_id}"): "The arrays the upload holds, read from their headers: name, shape "
                                          "and dtype; plus the file's sha256 and size.",
    ("delete", "/v1/datasets/{dataset_id}"): "The bytes stay while another dataset with the same content "
                                             "or a queued or running job still needs them.",
    ("get", "/v1/datasets/{dataset_id}/content"): "Exactly the bytes that were uploaded; the sha256 in "
                                                  "`GET /v1/datasets/{id}` checks them.",
    ("get", "/v1/jobs"): "Newest first; `status` (queued, running, succeeded, failed, cancelled) and "
                         "`model_id` filter. Each job has its `queue_position` while it waits. The epochs of "
                         "a job are in `GET /v1/jobs/{id}`.",
    ("get", "/v1/jobs/{job_id}"): "Status, attempt, queue position, error (Keras's own exception type and "
                                  "message), and `history`: Keras's `History.history`, one value per finished "
                                  "epoch, validation included. It is kept in SQL, so a finished job needs no "
                                  "event stream.",
    ("delete", "/v1/jobs/{job_id}"): "A job that has ended (succeeded, failed or cancelled), with its "
                                     "artifacts, epochs and event stream; cancel a running one first.",
    ("get", "/v1/jobs/{job_id}/artifacts"): "Each file the job produced with its size, media type, sha256 and "
                                            "download URL.",
    ("get", "/v1/jobs/{job_id}/artifacts/{name}"): "Streams the file. `weights.h5` downloads as "
                                                   "`model.weights.h5`, the only name Keras 3's `load_weights` "
                                                   "accepts (tutorial §5.1); `architecture.json` is what "
                                                   "`keras.models.model_from_json` reads (§5.2); `model.keras` "
                                                   "and `model.h5` (made for a job that lists it in "
                                                   "`artifacts`) are what `keras.models.load_model` reads (§5.3).",
    ("get", "/v1/weights/{weights_id}"): "The uploaded file's name, size and sha256; name its id in a job's "
                                         "`initial_weights` to start from it.",
}

_ID = "0123456789abcdef0123456789abcdef"


def _ref(array: str) -> dict[str, str]:
    return {"dataset_id": _ID, "array": array}


_COMPILE = {  # §3.1: optimizer=Adam(0.001), loss=categorical_crossentropy, metrics=[categorical_accuracy]
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
    "loss": "categorical_crossentropy",
    "metrics": ["categorical_accuracy"],
}

MODEL_EXAMPLES: dict[str, dict[str, Any]] = {
    "tutorial_2_1": {
        "summary": "§2.1 Sequential: Dense 32 relu, 32 tf.nn.relu, 10 tf.nn.softmax",
        "value": {"type": "sequential", "name": "seed_3_2", "input_shape": [72], "layers": [
            {"class_name": "Dense", "units": 32, "activation": "relu"},
            {"class_name": "Dense", "units": 32, "activation": "tf.nn.relu"},
            {"class_name": "Dense", "units": 10, "activation": "tf.nn.softmax"}]},
    },
    "tutorial_2_2": {
        "summary": "§2.2 Dense arguments: activations, initializers, regularizers",
        "value": {"type": "sequential", "name": "dense_arguments", "input_shape": [72], "layers": [
            {"class_name": "Dense", "units": 10, "activation": "sigmoid"},
            {"class_name": "Dense", "units": 10, "activation": "tf.nn.sigmoid"},
            {"class_name": "Dense", "units": 32, "kernel_initializer": "orthogonal"},
            {"class_name": "Dense", "units": 32, "kernel_initializer": "glorot_normal"},
            {"class_name": "Dense", "units": 32, "kernel_regularizer": "l2(0.01)"},
            {"class_name": "Dense", "units": 32, "kernel_regularizer": "l1(0.01)"}]},
    },
}

JOB_EXAMPLES: dict[str, dict[str, Any]] = {
    "tutorial_3_2": {
        "summary": "§3.1 + §3.2 compile, then fit on numpy arrays",
        "value": {"kind": "fit", "model_id": _ID, "compile": _COMPILE,
                  "fit": {"x": _ref("train_x"), "y": _ref("train_y"), "epochs": 10, "batch_size": 100,
                          "validation_data": {"x": _ref("val_x"), "y": _ref("val_y")}}},
    },
    "tutorial_3_3": {
        "summary": "§3.3 fit on tf.data pipelines: from_tensor_slices((x, y)).batch(32).repeat()",
        "value": {"kind": "fit", "model_id": _ID, "compile": _COMPILE, "fit": {
            "x": {"pipeline": {"x": _ref("train_x"), "y": _ref("train_y"),
                               "ops": [{"op": "batch", "batch_size": 32}, {"op": "repeat"}]}},
            "epochs": 5, "steps_per_epoch": 30,
            "validation_data": {"pipeline": {"x": _ref("val_x"), "y": _ref("val_y"),
                                             "ops": [{"op": "batch", "batch_size": 32}, {"op": "repeat"}]}},
            "validation_steps": 3}},
    },
    "tutorial_3_4_evaluate": {
        "summary": "§3.4 evaluate a trained job's model: evaluate(val_x, val_y, batch_size=32)",
        "value": {"kind": "evaluate", "source_job_id": _ID,
                  "evaluate": {"x": _ref("val_x"), "y": _ref("val_y"), "batch_size": 32}},
    },
    "tutorial_3_4_predict": {
        "summary": "§3.4 predict with a trained job's model",
        "value": {"kind": "predict", "source_job_id": _ID, "predict": {"x": _ref("val_x"), "batch_size": 32}},
    },
    "tutorial_4_4": {
        "summary": "§4.4 callbacks: EarlyStopping(patience=2, monitor='val_loss'), TensorBoard",
        "value": {"kind": "fit", "model_id": _ID, "compile": _COMPILE,
                  "fit": {"x": _ref("train_x"), "y": _ref("train_y"), "epochs": 5, "batch_size": 16,
                          "validation_data": {"x": _ref("val_x"), "y": _ref("val_y")}},
                  "callbacks": [{"class_name": "EarlyStopping", "config": {"patience": 2, "monitor": "val_loss"}},
                                {"class_name": "TensorBoard", "config": {}}]},
    },
}

EXAMPLES = {("post", "/v1/models"): MODEL_EXAMPLES, ("post", "/v1/jobs"): JOB_EXAMPLES}


def enrich(schema: dict[str, Any]) -> dict[str, Any]:
    """Fill in tag descriptions, missing route descriptions and the tutorial's request examples."""
    known = {tag["name"] for tag in schema.get("tags", [])}
    schema.setdefault("tags", []).extend(copy.deepcopy(t) for t in TAGS if t["name"] not in known)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not operation.get("description") and (method, path) in DESCRIPTIONS:
                operation["description"] = DESCRIPTIONS[(method, path)]
            examples = EXAMPLES.get((method, path))
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if examples and content is not None:
                content["examples"] = {**copy.deepcopy(examples), **content.get("examples", {})}
    return schema


def install(application: FastAPI) -> None:
    default_openapi = application.openapi

    def openapi() -> dict[str, Any]:
        if application.openapi_schema is None:
            application.openapi_schema = enrich(default_openapi())
        return application.openapi_schema

    application.openapi = openapi  # type: ignore[method-assign]
