"""Models: create from any spec form, Keras JSON, YAML or an uploaded file; read the summary and the
canonical architecture; delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.core.database import get_session
from app.core.errors import Problem
from app.core.settings import Settings, get_settings
from app.core.tables import ModelSpec
from app.http.auth import Caller, current_caller
from app.http.deps import Page, Paging, settings, spec_checker
from app.http.field_names import with_suggestions
from app.http.openapi import COMPONENT
from app.http.sessions import SessionReleasingRoute
from app.models import service, yaml_parser
from app.models.schemas import ModelOut, ModelPage, Plugins
from app.models.specs import (
    MAX_ARCHITECTURE_BYTES,
    MODEL_SPEC_ADAPTER,
    SPEC_FORMS,
    SPEC_TAGS,
    YamlSpec,
    parse_model_spec,
)
from app.specchecker.pool import CheckerBusy, CheckerFailed, CheckerRejected, SpecChecker

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=SessionReleasingRoute)

# libyaml's dumper where PyYAML has it: several times faster than the pure-Python one.
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


def model_out(row: ModelSpec) -> ModelOut:
    return ModelOut(id=row.id, name=row.name, spec=row.spec, summary=row.summary, created_at=row.created_at)


@dataclass
class ModelRequest:
    """A create request as read from the body: a spec form, or an uploaded file."""

    spec: Any = None
    upload: UploadFile | None = None
    name: str | None = None


def _validation_error(exc: ValidationError, *, tagged: bool) -> RequestValidationError:
    """pydantic's errors with the spec form's tag dropped from each location (`layers`, not
    `sequential.layers`), as FastAPI reports a body's errors."""
    errors = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        if tagged and loc and loc[0] in SPEC_TAGS:
            # An unknown key names the closest field of its spec form (`input_shap`: did you mean 'input_shape'?);
            # the problem handler does the rest, for every route.
            if error.get("type") == "extra_forbidden":
                error = with_suggestions([error], SPEC_FORMS[loc[0]], skip=1)[0]
            loc = loc[1:]
        errors.append({**error, "loc": ("body", *loc)})
    return RequestValidationError(errors)


async def _body(request: Request, limit: int, too_large: Callable[[int, int], Problem] | None = None) -> bytes:
    too_large = too_large or _too_large
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise too_large(declared, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_yaml(spec: YamlSpec) -> YamlSpec:
    """The spec with its YAML read in the YAML process (app/models/yaml_parser.py), not in this one."""
    settings = get_settings()
    size = len(spec.yaml.encode("utf-8", "surrogatepass"))
    if size > settings.max_yaml_bytes:
        raise _yaml_too_large(size, settings.max_yaml_bytes)
    ok, value = await yaml_parser.parse_isolated(spec.yaml, settings.spec_checker_timeout_s)
    if not ok:
        raise Problem(422, "Invalid Spec", f"The model spec is not valid: yaml: {value}", field="yaml")
    spec.set_parsed(value)
    return spec


def _yaml_too_large(size: int, limit: int) -> Problem:
    return Problem(413, "Request Too Large", f"The YAML is {size:,} bytes or more; the limit is {limit:,} "
                   "(KERASD_MAX_YAML_BYTES). Send the architecture as JSON (what model.to_json() writes).")


def _too_large(size: int, limit: int) -> Problem:
    return Problem(413, "Request Too Large", f"The request is {size:,} bytes; the limit is {limit:,}. A model "
                   "spec is small: send the architecture, and weights as a .keras / .h5 upload.")


async def model_request(request: Request) -> ModelRequest:
    """Read the body by its content type: JSON (a spec or Keras JSON), YAML, or a multipart upload."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        limit = get_settings().max_upload_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit + 64 * 1024:
            raise _too_large(declared, limit)
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(422, "Missing File", "Send the model file in the multipart field 'file' "
                          "(curl -F file=@model.keras).", field="file")
        name = form.get("name")
        return ModelRequest(upload=upload, name=name if isinstance(name, str) and name else None)
    if media in YAML_TYPES:
        body = await _body(request, get_settings().max_yaml_bytes, _yaml_too_large)
        try:
            spec = YamlSpec(type="yaml", yaml=body.decode("utf-8"), name=request.query_params.get("name"))
        except UnicodeDecodeError:
            raise Problem(422, "Malformed YAML", "The YAML body is not UTF-8 text.") from None
        except ValidationError as exc:
            raise _validation_error(exc, tagged=False) from None
        return ModelRequest(spec=await _read_yaml(spec))
    body = await _body(request, MAX_ARCHITECTURE_BYTES)
    if media in ("", "application/json") or media.endswith("+json"):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise Problem(422, "Malformed JSON", f"The body is not valid JSON: {exc}") from None
        try:
            spec = parse_model_spec(document)
        except ValidationError as exc:
            raise _validation_error(exc, tagged=True) from None
        if isinstance(spec, YamlSpec):
            spec = await _read_yaml(spec)
        return ModelRequest(spec=spec)
    raise Problem(415, "Unsupported Media Type", f"Content-Type {media!r} is not a model: send JSON (a spec or "
                  "the config model.to_json() writes), YAML (Content-Type: application/yaml) or a multipart "
                  "upload of a .keras / .h5 file in the field 'file'.")


def _request_body_doc() -> dict[str, Any]:
    """The body in OpenAPI: `ModelSpec`, a union of the spec forms by `type`, each form a component of its own
    (generated clients get a typed class per form), or the upload form `ModelUpload`."""
    union = MODEL_SPEC_ADAPTER.json_schema(ref_template=COMPONENT)
    refs = [form["$ref"] for form in union["oneOf"]]
    union["discriminator"] = {"propertyName": "type", "mapping": {
        union["$defs"][ref.rsplit("/", 1)[-1]]["properties"]["type"]["const"]: ref for ref in refs}}
    union["description"] = ("A model spec, by `type` (`sequential` when it is left out). A body that is the config "
                            "`model.to_json()` writes, with `class_name` at the top, is read as `keras_json`; the "
                            "same config as YAML may also be sent as the body itself, with Content-Type: "
                            "application/yaml (and the model's name in `?name=`).")
    defs = union.pop("$defs")
    upload = {"type": "object", "title": "ModelUpload", "required": ["file"], "additionalProperties": False,
              "properties": {"file": {"type": "string", "format": "binary", "description": "a .keras or .h5 whole "
                                                                                          "model"},
                             "name": {"type": "string"}}}
    # `required` is left out: openapi-python-client (0.29) writes a module that does not import for a required
    # body of two content types (its issue 1451). A request without one is still answered 422.
    return {"requestBody": {"content": {
        "application/json": {"schema": {"$ref": COMPONENT.format(model="ModelSpec"),
                                        "$defs": {**defs, "ModelSpec": {"title": "ModelSpec", **union}}}},
        # Only these two fields: model_request reads at most five (Starlette's max_fields).
        "multipart/form-data": {"schema": {"$ref": COMPONENT.format(model="ModelUpload"),
                                           "$defs": {"ModelUpload": upload}}},
    }}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ModelOut,
             summary="Create a model: Sequential or functional spec, plugin model, Keras JSON, YAML, or a "
                     ".keras / .h5 file (tutorial §2, §4, §5)",
             description="The spec becomes a Keras config, is walked against the allowlist of Keras built-ins "
                         "and enabled plugins, its parameters are bounded, and only then is it built in a "
                         "sandbox (an uploaded file is inspected there before Keras opens it). The answer is "
                         "the model's summary, or a 422 that says what is wrong.",
             openapi_extra=_request_body_doc())
def create_model(body: ModelRequest = Depends(model_request), session: Session = Depends(get_session),
                 checker: SpecChecker = Depends(spec_checker), config: Settings = Depends(settings),
                 caller: Caller = Depends(current_caller)) -> ModelOut:
    if body.upload is not None:
        try:
            row = service.create_model_from_file(
                session, tenant_id=caller.tenant_id, fileobj=body.upload.file, filename=body.upload.filename or "",
                name=body.name, checker=checker, max_params=config.max_model_params, chunk_bytes=config.chunk_bytes)
        finally:
            body.upload.file.close()
    else:
        row = service.create_model(session, tenant_id=caller.tenant_id, spec=body.spec, checker=checker,
                                   max_params=config.max_model_params)
    session.commit()
    return model_out(row)


@router.get("", response_model=ModelPage, summary="List models, newest first")
def list_models(paging: Paging = Depends(), session: Session = Depends(get_session),
                caller: Caller = Depends(current_caller)) -> Page:
    rows, total = service.list_models(session, tenant_id=caller.tenant_id, limit=paging.limit, offset=paging.offset)
    return Page(items=[model_out(r) for r in rows], total=total, limit=paging.limit, offset=paging.offset)


@router.get("/{model_id}", response_model=ModelOut, summary="A model's spec and summary")
def get_model(model_id: str, session: Session = Depends(get_session),
              caller: Caller = Depends(current_caller)) -> ModelOut:
    return model_out(service.get_model(session, tenant_id=caller.tenant_id, model_id=model_id))


@router.get("/{model_id}/architecture", summary="The canonical Keras architecture (tutorial §5.2)",
            description="`format=json` is exactly what `model.to_json()` writes and "
                        "`keras.models.model_from_json` reads; `format=yaml` is the same config as YAML "
                        "(Keras removed `to_yaml`, so kerasd converts); POST either back to /v1/models.",
            response_class=Response, responses={200: {"description": "The Keras config", "content": {
                "application/json": {"schema": {"type": "object", "description": "what model.to_json() writes"}},
                "application/yaml": {"schema": {"type": "string"}}}}})
def get_model_architecture(model_id: str, format: str = Query("json", pattern="^(json|yaml)$"),
                     session: Session = Depends(get_session), caller: Caller = Depends(current_caller)) -> Response:
    row = service.get_model(session, tenant_id=caller.tenant_id, model_id=model_id)
    if format == "yaml":
        return Response(yaml.dump(row.keras_config, Dumper=YAML_DUMPER, sort_keys=False), media_type="application/yaml")
    return Response(json.dumps(row.keras_config), media_type="application/json")


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a model no job uses")
def delete_model(model_id: str, session: Session = Depends(get_session),
                 caller: Caller = Depends(current_caller)) -> Response:
    service.delete_model(session, tenant_id=caller.tenant_id, model_id=model_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Plugins (DESIGN.md §4): the custom layers and models this server lets specs name.
plugins_router = APIRouter(prefix="/v1/plugins", tags=["plugins"], route_class=SessionReleasingRoute)


@plugins_router.get("", response_model=Plugins,
                    summary="The enabled server-side plugins: layers and models a spec may name (tutorial §4.2, "
                            "§4.3)",
                    description="Clients never send code: custom layers and subclassed models are Python packages "
                                "the server enables (KERASD_PLUGINS). Name a layer by `class_name` in a spec, a model "
                                "with `{\"type\": \"plugin_model\", \"class_name\": ...}`; Keras JSON names them "
                                "by `registered_name`. The list is read in the spec checker's sandbox, which imports "
                                "them.")
def list_plugins(checker: SpecChecker = Depends(spec_checker), config: Settings = Depends(settings)) -> dict[str, Any]:
    try:
        objects = checker.cached("catalog")["plugins"]
    except (CheckerFailed, CheckerRejected, CheckerBusy) as exc:
        raise Problem(503, "Plugins Unavailable", f"The spec checker could not load the plugins: {exc}. "
                      "Check KERASD_PLUGINS on the server.") from None
    return {"enabled": config.plugin_modules, "items": objects}
