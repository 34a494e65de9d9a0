"""A fit's arrays as the batches Keras's own array adapter makes, in tf.data datasets with the autotuner off."""

from __future__ import annotations

from typing import Any

from app.specchecker import compat
from workers.mapped_tensors import mapped_tensors


def arrays_as_datasets(data: dict[str, Any], arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, fit arguments) with the arrays made into datasets: what Keras's fit does with arrays, done here.

    The same ArrayDataAdapter (shuffle, batches, class and sample weights), Keras's own validation split; only
    tf.data's autotuning is off. Autotuning runs a model thread in every iterator, and fit makes a new iterator
    each epoch: tearing down the last one waits for that thread, which held the training thread for up to 5 s
    at epoch starts on a busy 2-core machine (measured: bench/throughput.py, README). The fit arguments then
    leave batching, shuffling, class weights and the split to the datasets. TensorFlow backend only.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    batch_size = arguments.get("batch_size")

    def dataset(x: Any, y: Any, sample_weight: Any, *, shuffle: Any, class_weight: Any = None) -> Any:
        # Tensors over the cache's mapped pages: the adapter would copy whole arrays into the worker's memory.
        x, y, sample_weight = mapped_tensors((x, y, sample_weight))
        adapter = compat.array_data_adapter(x, y, sample_weight=sample_weight, class_weight=class_weight,
                                            shuffle=shuffle, batch_size=batch_size)
        built = adapter.get_tf_dataset().apply(tf.data.experimental.assert_cardinality(adapter.num_batches))
        return built.with_options(options)

    data = dict(data)
    x, y, sample_weight = data["x"], data.get("y"), data.get("sample_weight")
    validation = data.get("validation_data")
    split = arguments.get("validation_split") or 0.0
    if split and validation is None:
        (x, y, sample_weight), (val_x, val_y, val_weight) = compat.train_validation_split(
            (x, y, sample_weight), validation_split=split)
        validation = {"x": val_x, "y": val_y, "sample_weight": val_weight}
    class_weight = arguments.get("class_weight")
    class_weight = {int(k): v for k, v in class_weight.items()} if class_weight else None
    data["x"] = dataset(x, y, sample_weight, shuffle=arguments.get("shuffle", True), class_weight=class_weight)
    data["y"] = data["sample_weight"] = None
    if isinstance(validation, dict):
        data["validation_data"] = dataset(validation["x"], validation["y"], validation.get("sample_weight"),
                                          shuffle=False)
    fit_arguments = {**arguments, "batch_size": None, "shuffle": False, "class_weight": None,
                     "validation_split": 0.0}
    return data, fit_arguments
