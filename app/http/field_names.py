"""The closest field for a key a request body does not have (`fit.epoch` → `epochs`), read from the body's models.

pydantic refuses an unknown key of a model that forbids extras with "Extra inputs are not permitted" and its
location only. The names the user could have meant are the fields of the model at the key's parent location,
which the body's annotation holds: this module follows the location through models, unions, lists and dicts
and names the closest field, or the fields there when none is close.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from app.specchecker.safety import suggestion


def _members(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, without Annotated, Optional and unions around them."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(annotation) for member in _members(arg)]
    return [annotation]


def _tag(annotation: Any) -> str:
    """How pydantic names a union member in an error's location: `ArrayRef`, `dict[str,ArrayRef]`."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return getattr(annotation, "__name__", str(annotation))
    return f"{origin.__name__}[{','.join(_tag(arg) for arg in typing.get_args(annotation))}]"


def _step(annotation: Any, part: Any) -> list[Any]:
    """The annotations one location part below `annotation` (a field, a list item, a dict value, a union tag)."""
    found: list[Any] = []
    for member in _members(annotation):
        if part == _tag(member):  # pydantic names the union member it tried
            found.append(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, field in member.model_fields.items():
                if part in (name, field.alias):
                    found.append(field.annotation)
        origin = typing.get_origin(member)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int):
            found.extend(typing.get_args(member)[:1])
        elif origin is dict and typing.get_args(member):
            found.append(typing.get_args(member)[-1])
    return found


def known_fields(root: Any, location: list[Any]) -> set[str]:
    """The field names (aliases where a field has one) of the models at `location` in `root`."""
    annotations = [root]
    for part in location:
        annotations = [below for annotation in annotations for below in _step(annotation, part)]
    return {field.alias or name for annotation in annotations for member in _members(annotation)
            if isinstance(member, type) and issubclass(member, BaseModel)
            for name, field in member.model_fields.items()}


def unknown_field_message(root: Any, location: list[Any]) -> str | None:
    """What to say of the unknown key at `location` (the key last), or None when the models there are not known."""
    if not location or not isinstance(location[-1], str):
        return None
    key, known = location[-1], known_fields(root, location[:-1])
    if not known:
        return None
    close = suggestion(key, known)
    if close:
        return f"{key!r} is not a field here: did you mean {close}?"
    return f"{key!r} is not a field here; the fields are {', '.join(sorted(known))}"


def with_suggestions(errors: list[dict[str, Any]], root: Any, *, skip: int = 1) -> list[dict[str, Any]]:
    """pydantic's errors with each unknown key's message naming the closest field, and each value outside a fixed
    set the closest allowed one; `skip` location parts (FastAPI's `body`) come before the root model's own."""
    rewritten = []
    for error in errors:
        if error.get("type") == "extra_forbidden" and root is not None:
            message = unknown_field_message(root, list(error.get("loc", ()))[skip:])
            if message:
                error = {**error, "msg": message}
        elif error.get("type") == "literal_error" and isinstance(error.get("input"), str):
            # "Input should be 'EarlyStopping', 'ReduceLROnPlateau', ...": the closest of those values.
            expected = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
            close = suggestion(error["input"], expected)
            if close:
                error = {**error, "msg": f"{error['msg']}; did you mean {close}?"}
        rewritten.append(error)
    return rewritten
