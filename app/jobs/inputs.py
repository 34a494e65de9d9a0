"""A job's data: array references resolved to stored arrays, checked before the job is queued.

In the stored request every array is `{"$array": {dataset_id, array, sha256, format, shape, dtype}}`, inside
the structure the user gave (one array, a list, a dict by input name, or a pipeline), so the worker
rebuilds exactly what Keras expects and never trusts a name it has not been given by the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from app.core.contract import ARRAY, JobRequest
from app.core.errors import Problem
from app.datasets import repository as datasets
from app.jobs.data import ArrayRef, Pipeline, ValidationData


def resolve_ref(session: Session, ref: ArrayRef, field: str, *, tenant_id: str) -> dict[str, Any]:
    dataset = datasets.get_dataset(session, tenant_id=tenant_id, dataset_id=ref.dataset_id)
    if dataset is None:
        raise Problem(422, "Unknown Dataset", f"{field}: no dataset with id {ref.dataset_id!r}; upload it "
                      "with POST /v1/datasets first.", field=field)
    names = [a["name"] for a in dataset.arrays]
    name = ref.array
    if name is None:
        if len(names) != 1:
            raise Problem(422, "Ambiguous Array", f"{field}: dataset {dataset.id} holds arrays {names}; "
                          "name one with 'array'.", field=field)
        name = names[0]
    info = next((a for a in dataset.arrays if a["name"] == name), None)
    if info is None:
        raise Problem(422, "Unknown Array", f"{field}: dataset {dataset.id} has no array {name!r}; it holds "
                      f"{names}.", field=field)
    if not info["shape"]:
        raise Problem(422, "Scalar Array", f"{field} is a scalar; Keras needs at least one dimension (the "
                      "samples).", field=field)
    return {ARRAY: {"dataset_id": dataset.id, "array": name, "sha256": dataset.blob_sha256,
                    "format": dataset.format, "shape": info["shape"], "dtype": info["dtype"]}}


def resolve_input(session: Session, value: Any, field: str, *, tenant_id: str) -> Any:
    """ArrayRef / list / dict of them / Pipeline → the same structure with every array resolved; only the
    tenant's own datasets resolve."""
    def resolve(item: Any, where: str) -> Any:
        return resolve_input(session, item, where, tenant_id=tenant_id)

    if value is None:
        return None
    if isinstance(value, ArrayRef):
        return resolve_ref(session, value, field, tenant_id=tenant_id)
    if isinstance(value, list):
        return [resolve(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {name: resolve(item, f"{field}.{name}") for name, item in value.items()}
    if isinstance(value, Pipeline):
        spec = value.pipeline
        source = {"x": resolve(spec.x, f"{field}.pipeline.x"),
                  "y": resolve(spec.y, f"{field}.pipeline.y"),
                  "sample_weight": resolve(spec.sample_weight, f"{field}.pipeline.sample_weight")}
        check_same_rows(source, f"{field}.pipeline")
        return {"pipeline": {**source, "ops": [op.model_dump(mode="json") for op in spec.ops]}}
    if isinstance(value, ValidationData):
        resolved = {"x": resolve(value.x, f"{field}.x"),
                    "y": resolve(value.y, f"{field}.y"),
                    "sample_weight": resolve(value.sample_weight, f"{field}.sample_weight")}
        check_same_rows(resolved, field)
        return resolved
    raise TypeError(f"unexpected input {type(value).__name__} at {field}")


def arrays_in(structure: Any, field: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every resolved array in a structure, with the field path that named it."""
    if isinstance(structure, dict):
        if ARRAY in structure:
            yield field, structure[ARRAY]
            return
        for key, value in structure.items():
            yield from arrays_in(value, f"{field}.{key}" if field else key)
    elif isinstance(structure, list):
        for index, value in enumerate(structure):
            yield from arrays_in(value, f"{field}[{index}]")


def check_same_rows(group: dict[str, Any], field: str) -> None:
    """Keras slices x, y and sample_weight together: every array must have the same number of rows."""
    rows: dict[str, int] = {}
    for name, info in arrays_in({k: v for k, v in group.items() if k != "ops"}):
        rows[f"{field}.{name}" if field else name] = info["shape"][0]
    if len(set(rows.values())) > 1:
        described = ", ".join(f"{name} has {count}" for name, count in rows.items())
        raise Problem(422, "Mismatched Arrays", f"Arrays that Keras slices together must have the same number "
                      f"of rows (first dimension): {described}.", field=field, rows=rows)


def dataset_ids_of(stored_request: dict[str, Any]) -> set[str]:
    """The datasets a stored job request reads."""
    return {array.dataset_id for array in JobRequest.model_validate(stored_request).data.arrays()}
