"""The closest known name for a misspelt Keras argument or identifier, read from Keras's own refusals (sandbox only).

Keras says what it did not recognize in a few fixed phrasings (a layer's `Unrecognized keyword arguments passed to
Dense: {'activaton': 'relu'}`, an optimizer's `Argument(s) not recognized: {...}`, Python's `unexpected keyword
argument`) and never what it would have taken. The names a class takes
are in its constructors' signatures along its MRO (a Dense's own and those Layer takes), so the closest of them is
what the user most likely meant, as `did_you_mean` does for class names.
"""

from __future__ import annotations

import ast
import inspect
import re
from typing import Any

from app.specchecker.safety import closest, did_you_mean, suggestion

# Keyword arguments Layer.__init__ takes through **kwargs (keras/src/layers/layer.py checks them by name).
LAYER_KWARGS = frozenset({"input_shape", "input_dim", "batch_input_shape", "batch_size", "weights"})

_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")
_UNRECOGNIZED = re.compile(r"(?:Unrecognized keyword arguments passed to \w+|Argument\(s\) not recognized): (\{.*\})")
_MISSING = re.compile(r"missing \d+ required (?:positional|keyword-only) arguments?: '([^']+)'")


def known_arguments(cls: type) -> set[str]:
    """The keyword arguments `cls(...)` takes: every named parameter of the constructors along its MRO."""
    known: set[str] = set()
    for klass in inspect.getmro(cls):
        if klass is object or "__init__" not in vars(klass):
            continue
        try:
            parameters = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):
            continue
        known |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}
    import keras

    if issubclass(cls, keras.layers.Layer):
        known |= LAYER_KWARGS
    return known


def unknown_arguments(reason: str) -> list[str]:
    """The argument names Keras (or Python) says a constructor does not take."""
    match = _UNRECOGNIZED.search(reason)
    if not match:
        unexpected = _UNEXPECTED.search(reason)
        return [unexpected.group(1)] if unexpected else []
    try:
        given = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        # A value Python cannot read back (an object's repr): the keys are still the quoted names before a colon.
        return re.findall(r"'([^']+)':", match.group(1))
    return [str(key) for key in given] if isinstance(given, dict) else []


def argument_hint(reason: str, cls: type, given: dict[str, Any]) -> str:
    """Closest names for a misspelt argument (`activaton` → `activation`, `unitz` → `units`), or ''."""
    known = known_arguments(cls)
    hints = [f"{name!r} is not an argument of {cls.__name__}: did you mean {suggestion(name, known)}?"
             for name in unknown_arguments(reason) if closest(name, known)]
    if hints:
        return "; " + "; ".join(hints)
    missing = _MISSING.search(reason)
    if missing:
        strays = [key for key in given if key not in known]
        close = [key for key in strays if did_you_mean(missing.group(1), [key])]
        if close:
            return f"; the config has {close[0]!r}, not a {cls.__name__} argument: {missing.group(1)!r} misspelled?"
    return ""


def innermost(exc: BaseException) -> str:
    """The last line of the innermost cause: Keras wraps a constructor's TypeError in its own deserializing one."""
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not other for other in seen):
        seen.append(link)
        link = link.__cause__ or link.__context__
    text = str(seen[-1]).strip()
    return text.splitlines()[-1] if text else type(seen[-1]).__name__
