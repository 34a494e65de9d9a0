"""Models: create from a spec, read the summary and the canonical architecture, delete."""

from __future__ import annotations

import json

import yaml
from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.orm import Session

from app.db import get_session
from app.deps import Paging, settings, spec_checker
from app.schemas import ModelCreate, ModelOut, Page
from app.services import models as service
from app.settings import Settings
from app.spec_checker import SpecChecker
from app.tables import ModelSpec

router = APIRouter(prefix="/v1/models", tags=["models"])


def model_out(row: ModelSpec) -> ModelOut:
    return ModelOut(id=row.id, name=row.name, spec=row.spec, summary=row.summary, created_at=row.created_at)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ModelOut,
             summary="Create a model from a Sequential spec (tutorial §2.1, §2.2)",
             description="The spec is checked against the allowlist of Keras built-ins, then built in a "
                         "sandbox; the answer is the model's summary, or a 422 saying what Keras refused.")
def create_model(body: ModelCreate, session: Session = Depends(get_session),
                 checker: SpecChecker = Depends(spec_checker), config: Settings = Depends(settings)) -> ModelOut:
    row = service.create_model(session, spec=body, checker=checker, max_params=config.max_model_params)
    session.commit()
    return model_out(row)


@router.get("", response_model=Page, summary="List models, newest first")
def list_models(paging: Paging = Depends(), session: Session = Depends(get_session)) -> Page:
    rows, total = service.list_models(session, limit=paging.limit, offset=paging.offset)
    return Page(items=[model_out(r) for r in rows], total=total, limit=paging.limit, offset=paging.offset)


@router.get("/{model_id}", response_model=ModelOut, summary="A model's spec and summary")
def get_model(model_id: str, session: Session = Depends(get_session)) -> ModelOut:
    return model_out(service.get_model(session, model_id=model_id))


@router.get("/{model_id}/architecture", summary="The canonical Keras architecture (tutorial §5.2)",
            description="`format=json` is exactly what `model.to_json()` writes and "
                        "`keras.models.model_from_json` reads; `format=yaml` is the same config as YAML "
                        "(Keras removed `to_yaml`, so kerasd converts).")
def get_architecture(model_id: str, format: str = Query("json", pattern="^(json|yaml)$"),
                     session: Session = Depends(get_session)) -> Response:
    row = service.get_model(session, model_id=model_id)
    if format == "yaml":
        return Response(yaml.safe_dump(row.keras_config, sort_keys=False), media_type="application/yaml")
    return Response(json.dumps(row.keras_config), media_type="application/json")


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a model no job uses")
def delete_model(model_id: str, session: Session = Depends(get_session)) -> Response:
    service.delete_model(session, model_id=model_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
