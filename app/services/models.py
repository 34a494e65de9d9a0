"""Model specs: checked for safety in pure Python, built by the spec checker, stored with their summary."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.problems import Problem, not_found
from app.spec_checker import CheckerFailed, CheckerRejected, SpecChecker
from app.spec_safety import Catalog, UnsafeSpec, check_config
from app.specs import SequentialSpec, estimate_params, sequential_config
from app.tables import Job, ModelSpec


def catalog_of(checker: SpecChecker) -> Catalog:
    return Catalog.from_lists(checker.cached("catalog"))


def checked(checker: SpecChecker, operation: str, document: dict[str, Any], *args: Any, what: str) -> Any:
    """Walk a document against the allowlist, then let the sandbox build it; any refusal is a 422."""
    try:
        check_config(document, catalog_of(checker))
    except UnsafeSpec as exc:
        raise Problem(422, "Unsafe Spec", f"The {what} was refused: {exc}", field=exc.path) from None
    try:
        return checker.call(operation, document, *args)
    except CheckerRejected as exc:
        raise Problem(422, "Invalid Spec", f"Keras could not build the {what}: {exc.type}: {exc.message}",
                      keras_error={"type": exc.type, "message": exc.message}) from None
    except CheckerFailed as exc:
        raise Problem(422, "Spec Check Failed", f"Building the {what} failed: {exc}. A model this large or "
                      "complex cannot be accepted; make it smaller.") from None


def create_model(session: Session, *, spec: SequentialSpec, checker: SpecChecker, max_params: int) -> ModelSpec:
    estimate = estimate_params(spec)
    if estimate > max_params:
        raise Problem(422, "Model Too Large",
                      f"The model has at least {estimate:,} parameters; the limit is {max_params:,}.")
    built = checked(checker, "check_model", sequential_config(spec), max_params, what="model")
    row = ModelSpec(name=spec.name, spec=spec.model_dump(mode="json", exclude_none=True),
                    keras_config=built["keras_config"], summary=built["summary"])
    session.add(row)
    session.flush()
    return row


def get_model(session: Session, *, model_id: str) -> ModelSpec:
    row = session.get(ModelSpec, model_id)
    if row is None:
        raise not_found("model", model_id)
    return row


def list_models(session: Session, *, limit: int, offset: int) -> tuple[list[ModelSpec], int]:
    rows = session.scalars(select(ModelSpec).order_by(ModelSpec.created_at.desc()).limit(limit).offset(offset))
    return list(rows), session.scalar(select(func.count()).select_from(ModelSpec))


def delete_model(session: Session, *, model_id: str) -> None:
    row = get_model(session, model_id=model_id)
    jobs = session.scalar(select(func.count()).select_from(Job).where(Job.model_id == model_id))
    if jobs:
        raise Problem(409, "Model In Use", f"{jobs} job(s) were made from model {model_id}; delete them "
                      "first (DELETE /v1/jobs/{id}) or keep the model.")
    session.delete(row)
