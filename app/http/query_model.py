"""A route's query string validated as one pydantic model, for a route polled hard that declares many parameters.

FastAPI validates each declared query parameter on its own, sent or not (its alias, whether it is a sequence, a
validation call of its own): GET /v1/jobs declares twelve. A bare FastAPI app with just those twelve answered a
request in 262 us of CPU, the same app validating them as one model in 89 us (best of 8 rounds of 1,500 requests,
this 2-core machine loaded). The documented route stays as it is, so the OpenAPI document is FastAPI's own; an
undocumented route registered before it answers the same requests: it validates the query string with a model
built from the documented route's own `Query(...)` declarations (the same constraints, so the same messages),
answers an invalid one with the same 422 (`RequestValidationError`, each error at ("query", name)), and calls the
documented route's function with the values.

Hand-written because the maintained way costs more than twice as much: FastAPI's own query parameter models
(`Annotated[Model, Query()]`, FastAPI 0.115+) give the same OpenAPI document and the same 422s, but on one bare app
they answered `?status=running` in 240 us of CPU against this module's 100 us (2.4x; the twelve parameters one by
one: 264 us) and a full query string in 272 us against 122 us (2.3x): before the model's one validation, FastAPI
loops over its fields on every request (aliases, each value read from the query string). bench/query_models.py, 16
interleaved rounds of 1,500 requests an arm, FastAPI 0.165, on this 2-core machine under other tests (load 13-16).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, params
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError, create_model


def _is_list(annotation: Any) -> bool:
    """`list[str]` or `list[str] | None`: a parameter that may be repeated (`?tag=a&tag=b`)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


def add_get_route(router: APIRouter, path: str, endpoint: Callable[..., Awaitable[Any]], **documented: Any) -> None:
    """GET `path` answered by `endpoint` (an async route function whose query parameters are all `Query(...)`
    defaults and whose other parameters are dependencies), documented from its signature as `router.get(path,
    **documented)` would, but with its query string validated as one model."""
    signature = inspect.signature(endpoint, eval_str=True)
    queried = {name: p for name, p in signature.parameters.items() if isinstance(p.default, params.Query)}
    dependencies = [p for name, p in signature.parameters.items() if name not in queried]
    fields = {name: (p.annotation, p.default) for name, p in queried.items()}
    model = create_model(f"{endpoint.__name__}_query", **fields)
    repeated = {p.default.alias or name for name, p in queried.items() if _is_list(p.annotation)}

    async def answer(request: Request, **resolved: Any) -> Any:
        query = request.query_params
        given = {key: query.getlist(key) if key in repeated else value for key, value in query.items()}
        try:
            values = model.model_validate(given)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
            ) from None
        # __dict__, not attributes: a deprecated parameter's attribute warns on every read.
        return await endpoint(**values.__dict__, **resolved)

    request_parameter = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    answer.__signature__ = signature.replace(parameters=[request_parameter, *dependencies])  # type: ignore[attr-defined]
    answer.__name__ = f"{endpoint.__name__}_quick"
    router.add_api_route(path, answer, methods=["GET"], include_in_schema=False, response_model=None)
    router.add_api_route(path, endpoint, methods=["GET"], **documented)
