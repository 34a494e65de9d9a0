"""The data of Keras calls as job inputs: numpy arrays (and tensors) uploaded as datasets, once per content;
`kerasd.data.Dataset` pipelines as the pipeline spec over their uploaded arrays; validation data."""

from __future__ import annotations

from typing import Any

from kerasd import arrays
from kerasd.data import Dataset


class Uploader:
    """Turns `x`, `y`, sample weights and validation data into the array references of a job request."""

    def __init__(self, client: Any, verbose: int) -> None:
        self._client = client
        self._verbose = verbose

    def ref(self, value: Any, role: str) -> dict[str, Any]:
        array = arrays.as_array(value, role)
        dataset = self._client.datasets.upload(array, filename=f"{role.replace('.', '_')}.npy",
                                               verbose=self._verbose)
        return {"dataset_id": dataset["id"]}

    def inputs(self, value: Any, role: str) -> Any:
        if value is None:
            return None
        if isinstance(value, Dataset):
            return value.to_spec(lambda array, name: self.ref(array, f"{role}.{name}"))
        if type(value).__module__.startswith("tensorflow") and "Dataset" in type(value).__name__:
            raise TypeError(f"{role}: a tf.data.Dataset runs locally; use kerasd.data.Dataset (the same calls) "
                            "so the worker builds the pipeline from uploaded arrays")
        if isinstance(value, dict):
            return {str(name): self.ref(item, f"{role}.{name}") for name, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.ref(item, f"{role}{index}") for index, item in enumerate(value)]
        return self.ref(value, role)

    def validation(self, value: Any) -> Any:
        if value is None or isinstance(value, Dataset):
            return self.inputs(value, "validation")
        if not isinstance(value, tuple | list) or len(value) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val), (x_val, y_val, val_sample_weight) or a "
                             "kerasd.data.Dataset")
        found = {"x": self.inputs(value[0], "val_x"), "y": self.inputs(value[1], "val_y")}
        if len(value) == 3 and value[2] is not None:
            found["sample_weight"] = self.ref(value[2], "val_sample_weight")
        return found
