"""A process started as if only one install extra of kerasd were installed: every other package unimportable.

The test environment installs every extra at once, so a process that imports a package its own extra does not
declare (the worker image importing FastAPI, say) would pass the suite and fail in production. `closure(extra)`
follows the installed packages' own metadata from `kerasd[extra]` through every requirement (with its extras
and markers) to the distributions that install would bring; `environment(extra)` writes a `sitecustomize.py`
that refuses any top-level module outside them (the standard library and kerasd's own packages excepted) and
returns the environment variables that start a process with it.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# kerasd's own top-level packages: installed in editable mode, so its RECORD does not list them.
OWN_PACKAGES = {"app", "workers", "kerasd", "kerasd_plugins", "migrations"}
# Set up by the interpreter and the virtual environment before any user code runs.
STARTUP_MODULES = {"sitecustomize", "usercustomize", "_distutils_hack", "_virtualenv"}

BLOCKER = '''"""Started by tests/extras.py: only the modules of one install extra are importable."""
import json, os, sys, sysconfig
from importlib.machinery import PathFinder

_ALLOWED = set(json.loads(os.environ["KERASD_TEST_ALLOWED_MODULES"]))
_STDLIB = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})


def _in_stdlib(top):
    # Also the standard library's modules that sys.stdlib_module_names leaves out (_sysconfigdata_*, ...).
    spec = PathFinder.find_spec(top, [p for p in sys.path if p.startswith(_STDLIB) and "-packages" not in p])
    return spec is not None


class _OnlyTheExtra:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _ALLOWED or top in sys.stdlib_module_names or top.startswith("__editable__"):
            return None
        if path is None and (_in_stdlib(top) or PathFinder.find_spec(top) is None):
            # The standard library, or a module installed nowhere (an optional one a library probes for with
            # importlib.util.find_spec, as JAX does for web_pdb): not installed is what it finds anyway.
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (not in kerasd[{os.environ['KERASD_TEST_EXTRA']}])",
                                  name=name)


sys.meta_path.insert(0, _OnlyTheExtra())
'''


def _requirements_of(dist: Distribution, extras: set[str], markers: dict[str, str]) -> list[Requirement]:
    found = []
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None:
            found.append(requirement)
            continue
        environment = {**default_environment(), **markers}
        if any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras or {""}):
            found.append(requirement)
    return found


def closure(extra: str, markers: dict[str, str] | None = None) -> set[str]:
    """The canonical names of the distributions `pip install 'kerasd[extra]'` brings, from installed metadata;
    `markers` overrides this interpreter's environment markers (python_version for another Python, say)."""
    seen: dict[str, set[str]] = {}
    pending = [("kerasd", {extra})]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in seen and extras <= seen[key]:
            continue
        seen.setdefault(key, set()).update(extras)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a requirement for another platform, or an optional one not installed here
        for requirement in _requirements_of(dist, extras, markers or {}):
            pending.append((requirement.name, set(requirement.extras)))
    return set(seen)


def _top_level_modules(name: str) -> set[str]:
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return set()
    listed = dist.read_text("top_level.txt")
    modules = set(listed.split()) if listed else set()
    for file in dist.files or []:
        top = file.parts[0]
        if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
            continue
        modules.add(top.split(".")[0] if top.endswith((".py", ".so", ".pth")) or "." in top else top)
    return modules


def allowed_modules(extra: str) -> set[str]:
    modules = set(OWN_PACKAGES) | STARTUP_MODULES
    for name in closure(extra):
        if name != "kerasd":
            modules |= _top_level_modules(name)
    return modules


def environment(extra: str, base: dict[str, str], folder: Path) -> dict[str, str]:
    """`base` with the blocker for `extra` on PYTHONPATH (its sitecustomize.py written into `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    path = [str(folder), *filter(None, base.get("PYTHONPATH", "").split(":"))]
    return {
        **base,
        "PYTHONPATH": ":".join(path),
        "KERASD_TEST_EXTRA": extra,
        "KERASD_TEST_ALLOWED_MODULES": json.dumps(sorted(allowed_modules(extra))),
    }


if __name__ == "__main__":  # `python -m tests.extras api`: what that extra may import
    print("\n".join(sorted(allowed_modules(sys.argv[1]))))
