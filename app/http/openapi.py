"""The OpenAPI document as client generators read it: short operation ids, every schema a named component.

FastAPI writes the document from the routes and their pydantic models. What it cannot know, routes give as
schemas in `openapi_extra` or `responses`, each with the components it needs under `$defs` (a pydantic
`json_schema(ref_template=COMPONENT)` writes exactly that); `named_components` moves those into
`components/schemas` once, so a schema used by many routes (the problem document) is one component that
each of them references, never an inline copy. tests/test_openapi_document.py holds the document to that.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

# The version of the API's description, not of kerasd: its major part grows with every change that breaks a
# client generated from an earlier document (docs/api-changelog.md), its minor part with additions.
API_VERSION = "2.9.0"
COMPONENT = "#/components/schemas/{model}"
_PREFIX = "#/components/schemas/"


def operation_id(route: APIRoute) -> str:
    """`createModel` from the route function `create_model`: short, and stable while the function keeps its name."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def file_response(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    """`responses` for a route that streams a file: its bytes, under each media type it may carry.

    `application/octet-stream` comes first: generators take the first media type they know, and that one
    gives bytes in every language."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    types = dict.fromkeys(("application/octet-stream", *media_types))
    return {200: {"description": description, "content": {media_type: binary for media_type in types}}}


class ComponentConflict(ValueError):
    """Two routes gave different schemas under one component name."""


def named_components(document: dict[str, Any],
                     names: dict[str, tuple[dict[str, Any], str]] | None = None) -> dict[str, Any]:
    """Move every `$defs` found under `paths` into `components/schemas`, put a reference to each of `names`
    (name: the inline schema pydantic writes, and a description) in place of its inline copies, and drop the
    components nothing uses."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})

    def hoist(node: Any) -> None:
        if isinstance(node, dict):
            for name, schema in node.pop("$defs", {}).items():
                if name in schemas and schemas[name] != schema:
                    raise ComponentConflict(f"two different schemas are named {name!r}")
                schemas[name] = schema
            for value in node.values():
                hoist(value)
        elif isinstance(node, list):
            for value in node:
                hoist(value)

    hoist(document.get("paths", {}))
    # A component may itself carry the `$defs` of the components it references.
    for schema in list(schemas.values()):
        hoist(schema)
    for name, (inline, description) in (names or {}).items():
        if name in schemas:
            raise ComponentConflict(f"two different schemas are named {name!r}")
        _replace(document, inline, {"$ref": COMPONENT.format(model=name)})
        schemas[name] = {**inline, "title": name, "description": description}
    # FastAPI still lists the models of bodies that a route's `openapi_extra` replaced.
    used = _referenced(document.get("paths", {}), schemas)
    for name in list(schemas):
        if name not in used:
            del schemas[name]
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """The component names reachable by `$ref` from the paths."""
    found: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_PREFIX):
                name = ref[len(_PREFIX):]
                if name not in found and name in schemas:
                    found.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _replace(node: Any, inline: dict[str, Any], ref: dict[str, Any]) -> None:
    """Every value equal to `inline` under `node` becomes `ref`."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if value == inline:
            node[key] = dict(ref)
        else:
            _replace(value, inline, ref)
