"""The `kerasd sweeps` commands:

    kerasd sweeps create FILE [--wait]   a sweep as YAML or JSON (the body of POST /v1/sweeps)
    kerasd sweeps get ID                 its trials (values, status, objective) and the best so far
    kerasd sweeps list [--limit N]
    kerasd sweeps watch ID               each trial as it is queued, runs and ends, until the sweep ends
    kerasd sweeps cancel ID

A table on the terminal; --json prints the API's answers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from kerasd import cli_text
from kerasd.cli_experiments import table
from kerasd.client import Client


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _show(args: argparse.Namespace, sweep: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(sweep, indent=2, default=str))
        return
    objective = sweep["objective"]
    print(f"sweep {sweep['id']}  {sweep.get('name') or ''}  {sweep['status']}  {sweep['algorithm']}  "
          f"{objective['direction']} {objective['metric']}  trials {sweep['trials_created']}/"
          f"{sweep['budget']['max_trials']}")
    paths = sorted({path for trial in sweep["trials"] for path in trial["params"]})
    rows = [[trial["number"], trial["job_id"][:8], trial["status"], _value(trial["objective"]),
             *[_value(trial["params"].get(path)) for path in paths]] for trial in sweep["trials"]]
    if rows:
        print(table(["#", "JOB", "STATUS", objective["metric"], *paths], rows))
    for failed in sweep.get("failed_asks") or ():
        print(f"trial {failed['number']} failed without a job: {failed['reason']}")
    best = sweep.get("best")
    if best is not None:
        print(f"best: trial {best['number']} (job {best['job_id']}), "
              f"{objective['metric']} = {_value(best['objective'])}")


def _id(client: Client, text: str) -> str:
    return cli_text.resolve_id(text, "sweep", client.sweeps.list)


def _create(client: Client, args: argparse.Namespace, load: Callable[[str], Any]) -> int:
    sweep = client.sweeps.create(load(args.file))
    if args.wait:
        sweep = client.sweeps.wait(sweep["id"])
    _show(args, sweep)
    return 0


def _get(client: Client, args: argparse.Namespace) -> int:
    _show(args, client.sweeps.get(_id(client, args.id)))
    return 0


def _list(client: Client, args: argparse.Namespace) -> int:
    page = client.sweeps.list(limit=args.limit)
    if args.json:
        print(json.dumps({"items": list(page), "next_cursor": page.next_cursor}, indent=2, default=str))
        return 0
    rows = [[s["id"], s.get("name") or "", s["status"], s["algorithm"], s["objective"]["metric"], s["trials_created"],
             str(s["created_at"])[:19]] for s in page]
    print(table(["ID", "NAME", "STATUS", "ALGORITHM", "OBJECTIVE", "TRIALS", "CREATED"], rows) if rows else "no sweeps")
    return 0


def _watch(client: Client, args: argparse.Namespace) -> int:
    """Exit 0 when the sweep completed, 1 when it was cancelled."""
    ended: dict[str, Any] = {}
    for event in client.sweeps.events(_id(client, args.id)):
        if args.json:
            print(json.dumps(event, default=str), flush=True)
        data = event["data"]
        if event["type"] == "sweep":
            ended = data
            if not args.json:
                best = data.get("best")
                said = f", best: trial {best['number']} = {_value(best['objective'])}" if best else ""
                print(f"sweep {data['status']}{said}")
        elif not args.json:
            values = ", ".join(f"{path}={_value(value)}" for path, value in data["params"].items())
            objective = f"  objective {_value(data['objective'])}" if data["objective"] is not None else ""
            print(f"trial {data['number']} {data['status']}{objective}  ({values})", flush=True)
    return 0 if ended.get("status") == "completed" else 1


def _cancel(client: Client, args: argparse.Namespace) -> int:
    _show(args, client.sweeps.cancel(_id(client, args.id)))
    return 0


def add_commands(group: Callable[[str, str], Any], command: Callable[..., Any],
                 client: Callable[[argparse.Namespace], Client], load: Callable[[str], Any]) -> None:
    """`kerasd sweeps ...` (`group` and `command` as kerasd/cli_client.py makes them)."""
    def run(action: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: action(client(args), args)

    sweeps = group("sweeps", "hyperparameter searches whose trials are jobs")
    create = command(sweeps, "create", lambda args: _create(client(args), args, load),
                     "a sweep as YAML or JSON (the body of POST /v1/sweeps)")
    create.add_argument("file")
    create.add_argument("--wait", action="store_true", help="then wait until it ends and show its trials")
    command(sweeps, "get", run(_get), "a sweep's trials, their values and objectives, the best so far",
            with_id="sweep")
    listing = command(sweeps, "list", run(_list), "newest first")
    listing.add_argument("--limit", type=int, default=50)
    command(sweeps, "watch", run(_watch), "each trial as it is queued, runs and ends, until the sweep ends",
            with_id="sweep")
    command(sweeps, "cancel", run(_cancel), "stop a sweep and its trials", with_id="sweep")
