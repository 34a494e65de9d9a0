"""The tutorial's §3.2 job through a Python client that openapi-python-client generated from kerasd's OpenAPI document:
upload arrays, create the model, fit, wait, read the events, download the weights. Only the generated package and
its own dependencies are used. tests/test_generated_clients.py runs it in a process of its own:

    python tests/python_client_tutorial.py CLIENT_DIR API_URL API_KEY NPZ_FILE   (prints one JSON line)
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path


def main(client_dir: str, api_url: str, api_key: str, npz_file: str) -> dict:
    sys.path.insert(0, client_dir)
    from kerasd_client import AuthenticatedClient
    from kerasd_client.api.datasets import create_dataset
    from kerasd_client.api.events import get_job_events
    from kerasd_client.api.jobs import create_job, get_artifact, get_job, list_artifacts
    from kerasd_client.api.models import create_model
    from kerasd_client.models import (
        ArrayRef,
        CompileSpec,
        CompileSpecOptimizerType1,
        DatasetUpload,
        FitSpec,
        JobCreate,
        JobCreateKind,
        LayerSpec,
        Problem,
        SequentialSpec,
        ValidationData,
    )
    from kerasd_client.types import File

    client = AuthenticatedClient(base_url=api_url, token=api_key, timeout=120, raise_on_unexpected_status=True)

    def answer(what: str, value: object) -> object:
        if value is None or isinstance(value, Problem):
            raise AssertionError(f"{what}: {value}")
        return value

    upload = answer("createDataset", create_dataset.sync(client=client, body=DatasetUpload(
        file=File(payload=io.BytesIO(Path(npz_file).read_bytes()), file_name="seed.npz"), name="seed")))

    def layer(**arguments: object) -> LayerSpec:
        spec = LayerSpec(class_name="Dense")
        spec.additional_properties.update(arguments)
        return spec

    # §2.1: Dense 32 relu, Dense 32 tf.nn.relu, Dense 10 tf.nn.softmax on 72 features.
    model = answer("createModel", create_model.sync(client=client, body=SequentialSpec(
        name="seed_3_2", input_shape=[72], layers=[layer(units=32, activation="relu"),
                                                   layer(units=32, activation="tf.nn.relu"),
                                                   layer(units=10, activation="tf.nn.softmax")])))

    def array(name: str) -> ArrayRef:
        return ArrayRef(dataset_id=upload.id, array=name)

    # §3.1 + §3.2: compile(Adam(0.001), categorical_crossentropy, [categorical_accuracy]), fit 10 epochs of 100.
    job = answer("createJob", create_job.sync(client=client, body=JobCreate(
        kind=JobCreateKind.FIT, model_id=model.id, seed=7,
        compile_=CompileSpec(optimizer=CompileSpecOptimizerType1.from_dict(
            {"class_name": "Adam", "config": {"learning_rate": 0.001}}), loss="categorical_crossentropy",
            metrics=["categorical_accuracy"]),
        fit=FitSpec(x=array("train_x"), y=array("train_y"), epochs=10, batch_size=100,
                    validation_data=ValidationData(x=array("val_x"), y=array("val_y"))))))
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job {job.id} still {job.status}"
        time.sleep(0.2)
        job = answer("getJob", get_job.sync(job.id, client=client))

    events = answer("getJobEvents", get_job_events.sync(job.id, client=client))
    artifacts = answer("listArtifacts", list_artifacts.sync(job.id, client=client))
    weights = answer("getArtifact", get_artifact.sync(job.id, "weights.h5", client=client))
    missing = get_job.sync("0" * 32, client=client)
    return {
        "arrays": {array.name: array.shape for array in upload.arrays},
        "params": model.summary.to_dict().get("total_params"),
        "status": job.status,
        "epochs": len(job.history.to_dict().get("loss", [])),
        "events": [line[7:] for line in events.splitlines() if line.startswith("event: ")],
        "artifacts": [artifact.name for artifact in artifacts],
        "weights_head": weights.payload.read(8).hex(),
        "missing": {"type": type(missing).__name__, "status": missing.status, "title": missing.title},
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
