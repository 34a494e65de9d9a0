"""Every SQL statement lives in a repository (DESIGN.md §12): services, routes, the HTTP layer, the core's other
modules and the workers call repositories and own transactions, and write no SQL of their own."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The modules that hold SQL by design: the repositories, the executors and the tables they run on.
SQL_HOMES = {
    "app/core/sql.py",
    "app/core/database.py",
    "app/core/tables.py",
    "app/core/registry_tables.py",
    "app/core/sweep_tables.py",
    "app/core/webhook_tables.py",
    "app/core/scope.py",
    "app/core/read_pool.py",
    "app/core/migrate.py",
}
# What a module outside them may take from SQLAlchemy: the Session type, its errors, and its events.
ALLOWED_IMPORTS = {"sqlalchemy.orm": {"Session", "SessionTransaction"}, "sqlalchemy.exc": None, "sqlalchemy": {"event"}}
# Session methods that run statements or change rows; the transaction's own (commit, rollback, close,
# begin_nested) stay with the caller, who owns it.
STATEMENT_METHODS = {
    "execute",
    "scalar",
    "scalars",
    "get",
    "add",
    "add_all",
    "delete",
    "merge",
    "query",
    "refresh",
    "flush",
    "expire",
    "expunge",
}


def _modules() -> list[Path]:
    found = [
        *ROOT.glob("app/*/service.py"),
        *ROOT.glob("app/*/routes.py"),
        *ROOT.glob("app/http/*.py"),
        *ROOT.glob("app/core/*.py"),
        *ROOT.glob("workers/*.py"),
        *ROOT.glob("app/commands/*.py"),
    ]
    return [path for path in found if str(path.relative_to(ROOT)) not in SQL_HOMES]


def _problems(path: Path) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            allowed = ALLOWED_IMPORTS.get(node.module, set())
            for alias in node.names:
                if allowed is not None and alias.name not in allowed:
                    problems.append(f"line {node.lineno}: imports {alias.name} from {node.module}")
        elif isinstance(node, ast.Import) and any(alias.name.startswith("sqlalchemy") for alias in node.names):
            problems.append(f"line {node.lineno}: imports sqlalchemy")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in STATEMENT_METHODS
            and isinstance(node.func.value, ast.Name | ast.Attribute)
            and (getattr(node.func.value, "id", None) or getattr(node.func.value, "attr", "")).endswith("session")
        ):
            problems.append(f"line {node.lineno}: session.{node.func.attr}(...)")
    return problems


def test_no_service_route_core_module_or_worker_writes_sql_of_its_own():
    modules = _modules()
    assert len(modules) > 40  # the globs found the tree
    found = {str(path.relative_to(ROOT)): _problems(path) for path in modules}
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_check_finds_sql_where_it_is_written(tmp_path):
    sample = tmp_path / "service.py"
    sample.write_text(
        "from sqlalchemy import select\nfrom sqlalchemy.orm import Session\n\n"
        "def f(session: Session):\n    return session.execute(select(1))\n"
    )
    assert _problems(sample) == ["line 1: imports select from sqlalchemy", "line 5: session.execute(...)"]
