"""Runs the spec checker's own code on hostile input and reports what it imported, opened, wrote or ran.

`python -m tests.spec_probe` reads one JSON request per line and answers one JSON report per line. For
each request it runs what the API runs in pure Python (spec translation, allowlist walk, parameter bound)
and then, regardless of the API's answer, what a sandbox runs (`app.specchecker.sandbox.sandbox_operations`) on
the same document or file, so both layers of the defence are shown to refuse on their own. Around both it
records, with a Python audit hook: modules imported, files opened (for writing, or outside the Python
installation), processes, sockets, `marshal.loads` and `exec`; and the files under its own HOME, TMPDIR
and working directory (fresh directories the test gives it, where Keras would download or extract).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

# The API's own pure-Python checks, imported before anything is measured.
from app.models.keras_documents import model_document
from app.models.param_budget import estimate_params
from app.models.specs import parse_model_spec
from app.specchecker.safety import check_config

WATCHED_EVENTS = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                  "socket.connect", "socket.getaddrinfo", "urllib.Request", "marshal.loads", "exec",
                  "ctypes.dlopen", "os.remove", "os.rename", "shutil.rmtree", "os.mkdir", "webbrowser.open")
_recording: list[Any] = []
_state = {"on": False}


def _hook(event: str, args: tuple) -> None:
    if not _state["on"]:
        return
    if event == "open":
        path, mode = args[0], args[1]
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        inside_python = isinstance(path, str) and path.startswith((sys.prefix, sys.base_prefix))
        if writing or not inside_python:
            _recording.append({"event": "open", "path": str(path), "writing": bool(writing)})
    elif event.startswith(WATCHED_EVENTS):
        _recording.append({"event": event, "args": repr(args)[:200]})


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def _api_side(request: dict[str, Any], catalog: Any, max_params: int) -> tuple[dict[str, Any], Any]:
    if request["kind"] == "file":
        return {"refused": False, "note": "files are opened only in a sandbox"}, None
    document = request.get("document")
    try:
        spec = parse_model_spec(request["body"])
        document = model_document(spec, catalog)
        check_config(document, catalog)
        estimate = estimate_params(document)
        if estimate > max_params:
            return {"refused": True, "error": f"at least {estimate:,} parameters"}, document
    except Exception as exc:
        return {"refused": True, "error": f"{type(exc).__name__}: {exc}"}, document
    return {"refused": False}, document


def _sandbox_side(request: dict[str, Any], operations: dict[str, Any], document: Any, max_params: int) -> dict:
    try:
        if request["kind"] == "file":
            operations["check_model_file"](request["path"], request["format"], max_params)
        else:
            # The raw document when the API's translation refused it: the sandbox must refuse it alone.
            operations["check_model"](document if document is not None else request["body"], max_params)
    except Exception as exc:
        return {"refused": True, "error_type": type(exc).__name__, "error": str(exc)[:2000]}
    return {"refused": False}


def _warm_up(operations: dict[str, Any], workdir: Path) -> None:
    """Everything an honest request imports lazily, imported before the first measurement."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    for suffix, file_format in ((".keras", "keras"), (".h5", "h5")):
        path = workdir / f"warm{suffix}"
        model.save(path)
        operations["check_model_file"](str(path), file_format, 10**6)
        path.unlink()
    operations["check_model"](json.loads(model.to_json()), 10**6)
    for hostile in ({"module": "keras.layers", "class_name": "Nope", "config": {}},):
        try:
            operations["check_model"](hostile, 10**6)
        except Exception:
            traceback.format_exc()


def main() -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # Keras's prints must not mix with the reports
    from app.specchecker.safety import Catalog
    from app.specchecker.sandbox import sandbox_operations

    operations = sandbox_operations()
    catalog = Catalog.from_lists(json.loads(json.dumps(operations["catalog"]())))
    # The test points HOME, KERAS_HOME, TMPDIR and the working directory inside this one root.
    watched = Path(os.environ.get("KERASD_PROBE_ROOT", tempfile.gettempdir()))
    _warm_up(operations, Path(tempfile.mkdtemp()))
    sys.addaudithook(_hook)
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        max_params = request.get("max_params", 50_000_000)
        modules, files = set(sys.modules), _files(watched)
        _recording.clear()
        _state["on"] = True
        try:
            api, document = _api_side(request, catalog, max_params)
            sandbox = _sandbox_side(request, operations, document, max_params)
        finally:
            _state["on"] = False
        report = {"api": api, "sandbox": sandbox, "new_modules": sorted(set(sys.modules) - modules),
                  "new_files": sorted(_files(watched) - files), "events": list(_recording)}
        print(json.dumps(report, default=str), file=out, flush=True)


if __name__ == "__main__":
    main()
