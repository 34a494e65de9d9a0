"""The allowlist walk of DESIGN.md §3, in pure Python: no user JSON reaches Keras's deserializer unchecked.

A Keras config names classes by `module` + `class_name`, and Keras imports whatever it names. Every such
reference must be a Keras built-in of an allowed kind (the catalog is read from Keras itself by the spec
checker) or an object of an enabled server-side plugin, every function reference must name a built-in
function, no string may point at a file or URL, and no shape may ask for more elements than any sample
could hold. The walk is run by the API before a spec is sent to the checker, and again wherever a config
is deserialized (checker and worker), so no path to Keras skips it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Classes that run code or load files: never buildable from a user spec, whatever Keras allows.
DENIED_CLASSES = {
    "Lambda": "runs the Python code sent with it (CVE-2024-3660, CVE-2026-12481)",
    "TFSMLayer": "loads and runs a SavedModel from a path",
    "TorchModuleWrapper": "unpickles and runs a PyTorch module",
    "JaxLayer": "runs an arbitrary JAX function",
    "FlaxLayer": "runs an arbitrary Flax module",
    "Layer": "is the abstract base class; subclasses are code",
    "Model": "is the base class of subclassed models, which are code",
    "InputSpec": "is not a layer",
    "Operation": "is not a layer",
}
# Modules a serialized Keras object may name, and the catalog kinds a class under each must belong to.
# Keras imports the module named, so this map is closed.
MODULE_KINDS: dict[str, tuple[str, ...]] = {
    "keras": ("models", "dtype_policies"),
    "keras.models": ("models",),
    "keras.layers": ("layers",),
    "keras.initializers": ("initializers",),
    "keras.regularizers": ("regularizers",),
    "keras.constraints": ("constraints",),
    "keras.optimizers": ("optimizers",),
    "keras.optimizers.schedules": ("optimizers",),
    "keras.losses": ("losses",),
    "keras.metrics": ("metrics",),
    "keras.dtype_policies": ("dtype_policies",),
    # `model.to_json()` writes the one class Keras does not export publicly under its private module. These are
    # names in configs, which Keras's deserializer reads; kerasd imports Keras internals only in compat.py.
    "keras.src.models.functional": ("models",),
    "keras.src.models.sequential": ("models",),
}
# Objects that `keras.applications` architectures define in modules of their own and name in their JSON, and the
# operations a functional model records where its builder calls keras.ops on symbolic tensors (ConvNeXt's
# residual add, MobileNetV3's hard-sigmoid gate). Each was read for file, network and code access: a weight
# and elementwise arithmetic in call(), nothing else. Keras writes them under these private modules; the
# names are data its deserializer reads. Each module admits only its own classes (a catalog kind per module).
KERAS_APPLICATION_OBJECTS: dict[str, tuple[str, ...]] = {
    "keras.src.applications.convnext": ("LayerScale",),
    "keras.src.applications.inception_resnet_v2": ("CustomScaleLayer",),
    "keras.src.ops.numpy": ("Add", "Multiply"),
}
MODULE_KINDS.update({module: (f"module:{module}",) for module in KERAS_APPLICATION_OBJECTS})
ALLOWED_MODULES = frozenset(MODULE_KINDS)
# Modules a `{"class_name": "function"}` reference may name (Keras writes `builtins` for its own).
FUNCTION_MODULES = frozenset({None, "builtins", "keras.activations", "keras.losses", "keras.metrics"})
# Keras's serializer writes these for plain values (tensors in call arguments, tuples, numpy constants).
PLACEHOLDER_CLASSES = frozenset({"__keras_tensor__", "__tuple__", "__numpy__", "__tensor__", "__bytes__",
                                 "__ellipsis__", "__slice__"})
# `__lambda__` is marshalled bytecode; `__typespec__` makes Keras look up a class by module and name.
CODE_PLACEHOLDERS = frozenset({"__lambda__", "__typespec__"})
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
MAX_DEPTH = 64
MAX_NODES = 200_000
# A shape whose sample holds more elements than this breaks TensorFlow's int32 indexing and fits no
# memory anyway; smaller bombs are stopped by the spec checker's parameter count and memory limit.
MAX_SHAPE_ELEMENTS = 2**31 - 1
# Arguments that Keras reads as a file path when they are a string (a lookup layer's `vocabulary`).
PATH_ARGUMENTS = frozenset({"vocabulary"})


class UnsafeSpec(ValueError):
    """A config that must not reach Keras; `path` says where in the document the problem is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(root)'}: {message}")
        self.path = path
        self.message = message


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The known names nearest to `name`, case-insensitively (`dense` → `Dense`, `Dnese` → `Dense`)."""
    by_lower: dict[str, str] = {}
    for candidate in sorted(candidates):
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[m] for m in matches]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    found = closest(name, candidates)
    return f"; the closest known names are {', '.join(found)}" if found else ""


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """`'activation'`, or `'adam', 'adamw' or 'nadam'`: the closest known names, quoted, for a question ('' if none
    is close)."""
    found = [repr(n) for n in closest(name, candidates)]
    return f"{', '.join(found[:-1])} or {found[-1]}" if len(found) > 1 else "".join(found)


@dataclass(frozen=True)
class Catalog:
    """Names of Keras built-ins by kind, and the enabled plugins, as the spec checker read them."""

    classes: frozenset[str]
    functions: frozenset[str]
    by_kind: dict[str, frozenset[str]] = field(default_factory=dict)
    # registered name ("package>Class") -> {"module", "class_name", "registered_name", "kind", ...}
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_lists(cls, lists: dict[str, Any]) -> Catalog:
        plugins = {p["registered_name"]: p for p in lists.get("plugins", [])}
        kinds = {kind: frozenset(names) for kind, names in lists.items() if kind != "plugins"}
        plain = {"functions", "activations"}
        # A module's own kind ("module:...") is reached only by naming that module, never by a bare class name.
        classes = frozenset(n for kind, names in kinds.items() if kind not in plain and not kind.startswith("module:")
                            for n in names)
        return cls(classes=classes - DENIED_CLASSES.keys(), functions=kinds.get("functions", frozenset()),
                   by_kind=kinds, plugins=plugins)

    def kind(self, name: str) -> frozenset[str]:
        return self.by_kind.get(name, frozenset())

    def plugin(self, name: str) -> dict[str, Any] | None:
        """A plugin object by registered name (`kerasd>MyLayer`) or by class name (`MyLayer`)."""
        if name in self.plugins:
            return self.plugins[name]
        found = [p for p in self.plugins.values() if p["class_name"] == name]
        return found[0] if len(found) == 1 else None

    def plugin_names(self) -> set[str]:
        return {p["class_name"] for p in self.plugins.values()}


def _looks_like_location(text: str) -> bool:
    lowered = text.lower()
    return ("://" in lowered or lowered.startswith(("/", "~", "\\", "file:")) or "../" in lowered
            or "..\\" in lowered)


def _shape_elements(value: Any) -> int | None:
    """Elements in one sample of a shape list ([None, 28, 28, 1] → 784); None if `value` is no shape."""
    if not isinstance(value, list) or not value or not all(v is None or type(v) is int for v in value):
        return None
    return math.prod(v for v in value if v is not None and v > 0)


def check_config(document: Any, catalog: Catalog, *, path: str = "") -> None:
    """Raise UnsafeSpec at the first reference that is not an allowed Keras built-in or enabled plugin."""
    count = 0

    def walk(node: Any, where: str, depth: int, key: str) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise UnsafeSpec(where, f"the document has more than {MAX_NODES:,} values")
        if depth > MAX_DEPTH:
            raise UnsafeSpec(where, f"the document nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            _check_object(node, where, catalog)
            for child_key, value in node.items():
                if not isinstance(child_key, str):
                    raise UnsafeSpec(where, "object keys must be strings")
                walk(value, f"{where}.{child_key}" if where else child_key, depth + 1, child_key)
        elif isinstance(node, list):
            # Elements carry their list's key with "[]", so nested shapes are still shapes and a list of
            # vocabulary tokens is not a vocabulary path.
            if key.replace("[]", "").endswith("shape"):
                _check_shape(node, where)
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]", depth + 1, f"{key}[]")
        elif isinstance(node, str):
            if _looks_like_location(node):
                raise UnsafeSpec(where, f"{node!r} looks like a file path or URL; specs may not name files")
            if key in PATH_ARGUMENTS:
                raise UnsafeSpec(where, f"a string {key} is read as a file path ({node!r}); give the "
                                 f"{key} as a list of tokens instead")
        elif not (node is None or isinstance(node, bool | int | float)):
            raise UnsafeSpec(where, f"unsupported value of type {type(node).__name__}")

    walk(document, path, 0, "")


def _check_shape(node: list, where: str) -> None:
    elements = _shape_elements(node)
    if elements is not None and elements > MAX_SHAPE_ELEMENTS:
        raise UnsafeSpec(where, f"the shape {node} holds {elements:,} elements per sample; the most any "
                         f"shape may hold is {MAX_SHAPE_ELEMENTS:,}")


def _check_name(node: dict, where: str) -> None:
    name = node.get("name")
    if isinstance(name, str) and (not NAME_PATTERN.match(name) or ".." in name):
        # Keras turns layer names into paths inside saved files (CVE-2026-12479).
        raise UnsafeSpec(f"{where}.name", f"the name {name!r} must match [A-Za-z0-9_.-]{{1,200}} without '..'")


def _check_object(node: dict, where: str, catalog: Catalog) -> None:
    if "__lambda__" in node or node.get("class_name") in CODE_PLACEHOLDERS:
        raise UnsafeSpec(where, "Python code (a lambda or a type spec) cannot be sent; use a server-side plugin")
    if "name" in node:
        _check_name(node, where)
    if "class_name" not in node:
        return
    class_name = node["class_name"]
    module = node.get("module")
    registered = node.get("registered_name")
    if not isinstance(class_name, str):
        raise UnsafeSpec(f"{where}.class_name", "class_name must be a string")
    if class_name in PLACEHOLDER_CLASSES:
        if module is not None or registered not in (None, class_name):
            raise UnsafeSpec(where, f"{class_name} is a plain value and names no module")
        return
    if class_name == "function":
        _check_function(node, where, catalog)
        return
    if registered is not None and registered != class_name:
        _check_plugin(node, where, catalog)
        return
    if class_name in DENIED_CLASSES:
        raise UnsafeSpec(f"{where}.class_name", f"{class_name} is not allowed: it {DENIED_CLASSES[class_name]}. "
                         "Custom code runs only as a server-side plugin (GET /v1/plugins)")
    if module is not None and module not in ALLOWED_MODULES:
        raise UnsafeSpec(f"{where}.module", f"module {module!r} is not an allowed Keras module; Keras would "
                         "import it. Name Keras built-ins (keras.layers, keras.initializers, ...) or a plugin")
    kinds = MODULE_KINDS.get(module, ()) if module is not None else ()
    known = frozenset().union(*(catalog.kind(k) for k in kinds)) if kinds else catalog.classes
    if class_name not in known - DENIED_CLASSES.keys():
        candidates = set(known) | (catalog.plugin_names() if module in (None, "keras.layers") else set())
        what = f"{module} class" if module else "Keras class"
        raise UnsafeSpec(f"{where}.class_name",
                         f"unknown {what} {class_name!r}{did_you_mean(class_name, candidates)}")


def _check_function(node: dict, where: str, catalog: Catalog) -> None:
    name = node.get("config")
    if node.get("module") not in FUNCTION_MODULES or node.get("registered_name") not in (None, "function", name):
        raise UnsafeSpec(where, f"the function {name!r} of module {node.get('module')!r} is not a Keras built-in "
                         "activation, loss or metric (CVE-2025-8747, CVE-2025-9906)")
    if not isinstance(name, str) or name not in catalog.functions:
        hint = did_you_mean(name, catalog.functions) if isinstance(name, str) else ""
        raise UnsafeSpec(where, f"the function {name!r} is not a Keras built-in activation, loss or metric{hint}")


def _check_plugin(node: dict, where: str, catalog: Catalog) -> None:
    registered = node.get("registered_name")
    plugin = catalog.plugins.get(registered) if isinstance(registered, str) else None
    if plugin is None:
        hint = did_you_mean(str(registered), catalog.plugins)
        raise UnsafeSpec(f"{where}.registered_name",
                         f"{registered!r} is not an enabled kerasd plugin; clients cannot send code{hint}. "
                         "GET /v1/plugins lists the enabled ones")
    if node.get("class_name") != plugin["class_name"] or node.get("module") not in (None, plugin["module"]):
        raise UnsafeSpec(where, f"plugin {registered!r} is class {plugin['class_name']!r} of module "
                         f"{plugin['module']!r}; the reference names {node.get('class_name')!r} of "
                         f"{node.get('module')!r}")
