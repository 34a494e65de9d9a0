"""A benchmark's arm run in a child process of its own: the last line it prints, as JSON."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def child_json(command: list[str], env: dict[str, str], what: str, timeout_s: float) -> dict[str, Any]:
    """Run `command`; its last line of standard output, parsed. A failure ends the bench with its error's tail."""
    found = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    if found.returncode != 0:
        raise SystemExit(f"{what} failed:\n{found.stderr[-3000:]}")
    return json.loads(found.stdout.strip().splitlines()[-1])
