"""`kerasd` command line: the client commands (models, datasets, jobs, artifacts, registry: kerasd/cli_client.py),
and the server's commands (up, api, worker, migrate, admin) where the server is installed."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from kerasd.cli_client import add_client_commands, run_client_command
from kerasd.cli_experiments import sort_values_joined

log = logging.getLogger("kerasd.cli")
CLIENT_COMMANDS = ("models", "datasets", "jobs", "artifacts", "sweeps", "registry")
SERVER_COMMANDS = {
    "up": "run the whole service on this machine: SQLite, Redis, API, one worker",
    "api": "run the HTTP API (uvicorn)",
    "worker": "run a Celery worker that trains jobs",
    "migrate": "bring the database to the newest schema",
    "admin": "tenants and API keys, on the server's database",
}


def _server_missing(reason: str):
    def run(args: argparse.Namespace) -> int:
        raise SystemExit(f"kerasd {args.command}: this is a server command, and the server is not installed here "
                         f"({reason}). Install it with: pip install 'kerasd[embedded]' (everything on one machine), "
                         "or 'kerasd[api]' / 'kerasd[cpu]' for one process.")

    return run


def add_server_commands(commands: argparse._SubParsersAction) -> None:
    """The server's subcommands, registered by the server's own code under the `kerasd.commands` entry point:
    the client imports nothing of the server (a client-only install has the entry point, not its packages)."""
    for entry in entry_points(group="kerasd.commands"):
        try:
            register = entry.load()
        except ImportError as exc:
            log.debug("server commands unavailable: %s", exc)
            missing = _server_missing(str(exc))
            break
        register(commands)
        return
    else:
        missing = _server_missing("no kerasd.commands entry point")
    for name, help_text in SERVER_COMMANDS.items():
        parser = commands.add_parser(name, help=f"{help_text} (needs the server installed)", add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(run=missing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kerasd", description="Training as a service for Keras.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_server_commands(commands)
    add_client_commands(commands)

    args = parser.parse_args(sort_values_joined(sys.argv[1:] if argv is None else list(argv)))
    if args.command in CLIENT_COMMANDS:
        return run_client_command(args)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
