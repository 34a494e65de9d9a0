"""`python -m app.http.openapi_snapshot`: write the API's OpenAPI document to docs/openapi.json, the copy that
clients are generated from and later documents are compared with.

It refuses to write a document that breaks clients generated from the committed one (app/http/openapi_compat.py)
unless the document's major version (API_VERSION in app/http/openapi.py) has grown and docs/api-changelog.md
has a section for that version. `--check` writes nothing and fails when the committed copy is not current.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.http.openapi_compat import breaking_changes

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "docs" / "openapi.json"
CHANGELOG = ROOT / "docs" / "api-changelog.md"


def served_document() -> dict[str, Any]:
    from app.main import create_app  # here: the app is only built when a document is asked for

    return create_app().openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def unannounced_breaks(old: dict[str, Any], new: dict[str, Any], changelog: str) -> list[str]:
    """The changes that break clients of `old`, unless `new` is a new major version with a changelog entry."""
    found = breaking_changes(old, new)
    old_version, new_version = old["info"]["version"], new["info"]["version"]
    announced = (int(new_version.split(".")[0]) > int(old_version.split(".")[0])
                 and f"## {new_version}" in changelog)
    return [] if announced else found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if the copy is not current")
    parser.add_argument("--path", type=Path, default=SNAPSHOT, help=f"the committed copy (default {SNAPSHOT})")
    args = parser.parse_args(argv)
    new = served_document()
    old = json.loads(args.path.read_text()) if args.path.exists() else None
    if old is not None:
        breaks = unannounced_breaks(old, new, CHANGELOG.read_text() if CHANGELOG.exists() else "")
        if breaks:
            print(f"The document breaks clients generated from {args.path}:", *breaks, sep="\n  ", file=sys.stderr)
            print(f"Avoid the change, or raise the major part of API_VERSION (now {new['info']['version']}) in "
                  f"app/http/openapi.py and say what changed under its heading in {CHANGELOG.name}.", file=sys.stderr)
            return 1
    if args.check:
        if old != new:
            print(f"{args.path} is not the served document: run python -m app.http.openapi_snapshot",
                  file=sys.stderr)
            return 1
        return 0
    args.path.write_text(render(new))
    print(f"wrote {args.path} (API version {new['info']['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
