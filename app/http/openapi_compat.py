"""Which changes between two OpenAPI documents break a client generated from the older one.

Hand-written: the PyPI packages that compare OpenAPI documents (api-schema-diff, kryptorious-apiguard,
breakwatch, contractor-cli, impoasdiff, ...) are young single-author projects that compare only top-level
properties, treat requests and responses alike, or follow no `$ref`; oasdiff (Go) and openapi-changes (an npm
package that downloads a Go binary when installed) cannot be installed here. docs/design.md says more.

What breaks a client, read in the direction the data goes (a client writes requests and reads responses):
- an operation gone, or its `operationId` changed (a generated client names its functions by it);
- a named schema gone (a generated client names its classes by it);
- a parameter gone, or one that is new and required, or that became required;
- a request body newly required, a media type gone from a request or a response, a success status gone;
- in a request: a property gone, newly required, a narrower type, fewer enum values or union variants,
  `additionalProperties` closed, a tighter bound;
- in a response: a property gone or no longer required, a wider type (say, now nullable), more enum values
  or union variants (a generated client refuses a value it does not know).
Descriptions, examples, titles and anything added where a client does not look are not breaking.
"""

from __future__ import annotations

import json
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_PREFIX = "#/components/schemas/"
# Bounds that, raised (`min*`) or lowered (`max*`), refuse a request that was valid.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each change from `old` to `new` that breaks a client of `old`, as a sentence naming where."""
    found: list[str] = []
    reader = _SchemaReader(old, new, found)
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path, {})
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_item:
                found.append(f"{where}: the operation was removed")
                continue
            _operation(where, old_item[method], new_item[method], reader, found)
    old_names = set(old.get("components", {}).get("schemas", {}))
    new_names = set(new.get("components", {}).get("schemas", {}))
    found += [f"components/schemas/{name}: the schema was removed or renamed" for name in sorted(old_names - new_names)]
    return found


def _operation(where: str, old: dict[str, Any], new: dict[str, Any], reader: _SchemaReader, found: list[str]) -> None:
    if old.get("operationId") != new.get("operationId"):
        found.append(f"{where}: operationId {old.get('operationId')!r} became {new.get('operationId')!r}")
    old_params = {(p.get("in"), p.get("name")): p for p in old.get("parameters", [])}
    new_params = {(p.get("in"), p.get("name")): p for p in new.get("parameters", [])}
    for key, param in old_params.items():
        if key not in new_params:
            found.append(f"{where}: the {key[0]} parameter {key[1]!r} was removed")
            continue
        if new_params[key].get("required") and not param.get("required"):
            found.append(f"{where}: the {key[0]} parameter {key[1]!r} became required")
        reader.request(f"{where} {key[0]} parameter {key[1]!r}", param.get("schema", {}),
                       new_params[key].get("schema", {}))
    for key, param in new_params.items():
        if key not in old_params and param.get("required"):
            found.append(f"{where}: a new required {key[0]} parameter {key[1]!r}")
    old_body, new_body = old.get("requestBody"), new.get("requestBody")
    if new_body is not None and old_body is None and new_body.get("required"):
        found.append(f"{where}: a request body is now required")
    if old_body is not None:
        if new_body is None:
            found.append(f"{where}: the request body was removed")
        else:
            if new_body.get("required") and not old_body.get("required"):
                found.append(f"{where}: the request body became required")
            _content(f"{where} request", old_body.get("content", {}), new_body.get("content", {}),
                     reader.request, found)
    old_responses, new_responses = old.get("responses", {}), new.get("responses", {})
    for status, response in old_responses.items():
        if status not in new_responses:
            if str(status).startswith("2"):
                found.append(f"{where}: the {status} response was removed")
            continue
        _content(f"{where} {status} response", response.get("content", {}),
                 new_responses[status].get("content", {}), reader.response, found)


def _content(where: str, old: dict[str, Any], new: dict[str, Any], compare: Any, found: list[str]) -> None:
    for media_type, old_media in old.items():
        if media_type not in new:
            found.append(f"{where}: media type {media_type} was removed")
            continue
        compare(f"{where} ({media_type})", old_media.get("schema", {}), new[media_type].get("schema", {}))
        # A stream's items (app/events/routes.py: each Server-Sent Event's data).
        if "x-item-schema" in old_media:
            compare(f"{where} ({media_type} items)", old_media["x-item-schema"],
                    new[media_type].get("x-item-schema", {}))


class _SchemaReader:
    """Compares two schemas, resolving `$ref`s in their own documents, once per pair and direction."""

    def __init__(self, old: dict[str, Any], new: dict[str, Any], found: list[str]) -> None:
        self.old_schemas = old.get("components", {}).get("schemas", {})
        self.new_schemas = new.get("components", {}).get("schemas", {})
        self.found = found
        self.seen: set[tuple[str, str, str]] = set()

    def request(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._compare(where, old, new, writing=True)

    def response(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._compare(where, old, new, writing=False)

    def _resolve(self, schema: Any, schemas: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The schema behind a chain of `$ref`s, and the name of the last component it passed."""
        name = ""
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith(_PREFIX):
            name = schema["$ref"][len(_PREFIX):]
            schema = schemas.get(name, {})
        return name, schema if isinstance(schema, dict) else {}

    def _compare(self, where: str, old: Any, new: Any, *, writing: bool) -> None:
        old_name, old = self._resolve(old, self.old_schemas)
        new_name, new = self._resolve(new, self.new_schemas)
        if old_name or new_name:
            key = (old_name, new_name, "request" if writing else "response")
            if key in self.seen:
                return
            self.seen.add(key)
            where = f"{where} -> {new_name or old_name}" if old_name == new_name else where
        old_types, new_types = _types(old), _types(new)
        if old_types and new_types:
            narrowed = old_types - new_types if writing else new_types - old_types
            # An integer is a number: a request field widened from integer to number, or a response narrowed
            # from number to integer, breaks no one.
            narrowed -= {"integer"} if "number" in (new_types if writing else old_types) else set()
            if narrowed:
                self.found.append(f"{where}: type {sorted(old_types)} became {sorted(new_types)}")
        elif old_types and not new_types and not writing and not _variants(new):
            self.found.append(f"{where}: type {sorted(old_types)} is no longer stated")
        elif new_types and not old_types and writing and not _variants(old):
            self.found.append(f"{where}: now only {sorted(new_types)}")
        self._enum(where, old, new, writing)
        self._variants(where, (old_name, old), (new_name, new), writing)
        self._properties(where, old, new, writing)
        if writing:
            _bounds(where, old, new, self.found)
        for key in ("items", "additionalProperties"):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                self._compare(f"{where}[{key}]", old[key], new[key], writing=writing)
        if writing and old.get("additionalProperties", True) is not False and new.get("additionalProperties") is False \
                and "object" in (old_types or {"object"}):
            self.found.append(f"{where}: no longer takes properties beyond those listed")

    def _enum(self, where: str, old: dict[str, Any], new: dict[str, Any], writing: bool) -> None:
        old_values, new_values = _enum_values(old), _enum_values(new)
        if old_values is None:
            if new_values is not None and writing:
                self.found.append(f"{where}: now only {sorted(new_values)}")
            return
        if new_values is None:
            if not writing:
                self.found.append(f"{where}: no longer limited to {sorted(old_values)}")
            return
        changed = old_values - new_values if writing else new_values - old_values
        if changed:
            what = "no longer takes" if writing else "may now send"
            self.found.append(f"{where}: {what} {sorted(changed)}")

    def _variants(self, where: str, old: tuple[str, dict[str, Any]], new: tuple[str, dict[str, Any]],
                  writing: bool) -> None:
        """Union members (`oneOf`, `anyOf`; a schema that is not a union is its own one member)."""
        old_variants, new_variants = _variants(old[1]), _variants(new[1])
        if not old_variants and not new_variants:
            return
        old_by_key = ({self._variant_key(v, self.old_schemas): v for v in old_variants} if old_variants
                      else {old[0] or self._variant_key(old[1], self.old_schemas): old[1]})
        new_by_key = ({self._variant_key(v, self.new_schemas): v for v in new_variants} if new_variants
                      else {new[0] or self._variant_key(new[1], self.new_schemas): new[1]})
        changed = set(old_by_key) - set(new_by_key) if writing else set(new_by_key) - set(old_by_key)
        if changed:
            what = "no longer takes" if writing else "may now send"
            self.found.append(f"{where}: {what} {sorted(changed)}")
        for key, variant in old_by_key.items():
            if key in new_by_key and (old_variants and new_variants):
                self._compare(f"{where}<{key}>", variant, new_by_key[key], writing=writing)

    def _variant_key(self, variant: Any, schemas: dict[str, Any]) -> str:
        """A model or a union goes by its name; an array or a map by what it holds, named or not."""
        name, schema = self._resolve(variant, schemas)
        if name and ("properties" in schema or _variants(schema)):
            return name
        types = sorted(_types(schema))
        inner = schema.get("items") or schema.get("additionalProperties")
        inner_name = self._resolve(inner, schemas)[0] if isinstance(inner, dict) else ""
        return "|".join(types) + (f" of {inner_name}" if inner_name else "")

    def _properties(self, where: str, old: dict[str, Any], new: dict[str, Any], writing: bool) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name, schema in old_props.items():
            if name not in new_props:
                self.found.append(f"{where}: property {name!r} was removed")
                continue
            if writing and name in new_required - old_required:
                self.found.append(f"{where}: property {name!r} became required")
            if not writing and name in old_required - new_required:
                self.found.append(f"{where}: property {name!r} is no longer always sent")
            self._compare(f"{where}.{name}", schema, new_props[name], writing=writing)
        if writing:
            for name in (new_required - old_required) - set(old_props):
                self.found.append(f"{where}: a new required property {name!r}")


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        found = {declared}
    elif isinstance(declared, list):
        found = set(declared)
    else:
        found = set()
    return found


def _variants(schema: dict[str, Any]) -> list[Any]:
    return list(schema.get("oneOf", [])) + list(schema.get("anyOf", []))


def _enum_values(schema: dict[str, Any]) -> set[Any] | None:
    if "enum" in schema:
        return {_Value(value) for value in schema["enum"]}
    if "const" in schema:
        return {_Value(schema["const"])}
    return None


class _Value(str):
    """An enum value, hashable whatever its JSON type, that reads as itself."""

    def __new__(cls, value: Any) -> _Value:
        return super().__new__(cls, json.dumps(value))

    def __repr__(self) -> str:
        return repr(json.loads(self))


def _bounds(where: str, old: dict[str, Any], new: dict[str, Any], found: list[str]) -> None:
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            found.append(f"{where}: {key} {old.get(key)} became {new[key]}")
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            found.append(f"{where}: {key} {old.get(key)} became {new[key]}")
    if new.get("pattern") is not None and new.get("pattern") != old.get("pattern"):
        found.append(f"{where}: pattern {old.get('pattern')!r} became {new['pattern']!r}")
