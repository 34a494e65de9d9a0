"""The allowlist walk of DESIGN.md §3, in pure Python: no user JSON reaches Keras's deserializer unchecked.

A Keras config names classes by `module` + `class_name`, and Keras imports whatever it names. Every such
reference must be a Keras built-in of an allowed kind (the catalog is read from Keras itself by the spec
checker), every function reference must name a built-in function, and no string may point at a file or
URL. The walk is run by the API before a spec is sent to the checker, and again wherever a config is
deserialized (checker and worker), so no path to Keras skips it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Layers that run arbitrary code or load files: never buildable from a user spec, whatever Keras allows.
DENIED_CLASSES = frozenset({
    "Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "Layer", "Model",
    "Functional", "InputSpec", "Operation",
})
# Modules a serialized Keras object may name. Keras imports the module named, so this list is closed.
ALLOWED_MODULES = frozenset({
    "keras", "keras.layers", "keras.models", "keras.initializers", "keras.regularizers",
    "keras.constraints", "keras.optimizers", "keras.optimizers.schedules", "keras.losses",
    "keras.metrics", "keras.activations",
})
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
MAX_DEPTH = 64
MAX_NODES = 200_000
# Serialized objects that are plain data (Keras writes them for constants and dtype policies).
DATA_CLASSES = frozenset({"DTypePolicy", "FloatDTypePolicy", "__tuple__"})


class UnsafeSpec(ValueError):
    """A config that must not reach Keras; `path` says where in the document the problem is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(root)'}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Catalog:
    """Names of Keras built-ins by kind, as the spec checker read them from the installed Keras."""

    classes: frozenset[str]
    functions: frozenset[str]
    by_kind: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_lists(cls, by_kind: dict[str, Iterable[str]]) -> Catalog:
        kinds = {kind: frozenset(names) for kind, names in by_kind.items()}
        classes = frozenset(n for kind, names in kinds.items() if kind != "functions" for n in names)
        return cls(classes=classes - DENIED_CLASSES, functions=kinds.get("functions", frozenset()),
                   by_kind=kinds)

    def kind(self, name: str) -> frozenset[str]:
        return self.by_kind.get(name, frozenset())


def _looks_like_location(text: str) -> bool:
    lowered = text.lower()
    return "://" in lowered or lowered.startswith(("/", "~", "\\", "file:")) or "../" in lowered


def check_config(document: Any, catalog: Catalog, *, path: str = "") -> None:
    """Raise UnsafeSpec at the first reference that is not an allowed Keras built-in."""
    count = 0

    def walk(node: Any, where: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise UnsafeSpec(where, f"the document has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise UnsafeSpec(where, f"the document nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            _check_object(node, where, catalog)
            for key, value in node.items():
                if not isinstance(key, str):
                    raise UnsafeSpec(where, "object keys must be strings")
                walk(value, f"{where}.{key}" if where else key, depth + 1)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]", depth + 1)
        elif isinstance(node, str):
            if _looks_like_location(node):
                raise UnsafeSpec(where, f"{node!r} looks like a file path or URL; specs may not name files")
        elif not (node is None or isinstance(node, bool | int | float)):
            raise UnsafeSpec(where, f"unsupported value of type {type(node).__name__}")

    walk(document, path, 0)


def _check_object(node: dict, where: str, catalog: Catalog) -> None:
    if "__lambda__" in node or node.get("class_name") == "__lambda__":
        raise UnsafeSpec(where, "lambda functions are code and cannot be sent; use a server-side plugin")
    name = node.get("name")
    if "name" in node and isinstance(name, str) and not NAME_PATTERN.match(name):
        raise UnsafeSpec(f"{where}.name", f"the name {name!r} must match [A-Za-z0-9_.-]{{1,200}}")
    if "class_name" not in node:
        return
    class_name = node["class_name"]
    module = node.get("module")
    registered = node.get("registered_name")
    if not isinstance(class_name, str):
        raise UnsafeSpec(f"{where}.class_name", "class_name must be a string")
    if class_name == "function":
        function_name = node.get("config")
        if module not in (None, "builtins", "keras.activations", "keras.losses", "keras.metrics") or (
            function_name not in catalog.functions
        ):
            raise UnsafeSpec(where, f"the function {function_name!r} is not a Keras built-in function")
        return
    if module is not None and module not in ALLOWED_MODULES:
        raise UnsafeSpec(f"{where}.module", f"module {module!r} is not an allowed Keras module")
    if registered not in (None, class_name):
        raise UnsafeSpec(f"{where}.registered_name",
                         f"{registered!r} is not a registered kerasd plugin; clients cannot send code")
    if class_name in DENIED_CLASSES:
        raise UnsafeSpec(f"{where}.class_name",
                         f"{class_name} can run arbitrary code and is not allowed; use a server-side plugin")
    if class_name not in catalog.classes and class_name not in DATA_CLASSES and class_name != "Sequential":
        raise UnsafeSpec(f"{where}.class_name", f"unknown Keras class {class_name!r}")
