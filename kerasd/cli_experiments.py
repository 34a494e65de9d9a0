"""The `kerasd jobs` commands for runs as experiments:

    kerasd jobs list [--tag T]... [--name PREFIX] [--status S] [--sort -val_loss] [--limit N]
    kerasd jobs tag ID TAG... [--remove]          add tags (or remove them)
    kerasd jobs update ID [--name N] [--notes TEXT] [--tags a,b]
    kerasd jobs compare ID ID...                  the params that differ, and each metric's final and best
    kerasd jobs tensorboard ID... [--logdir DIR] [--port P] [--no-start]

A table on the terminal; --json prints the API's answers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kerasd import cli_text, tensorboard_logs
from kerasd.client import Client

UNSET: Any = object()
FIXED_SORTS = ("created_at", "name")


def sort_key(text: str | None) -> str | None:
    """`--sort` as the API takes it: `val_loss` (a metric's name alone) means its best value, `-val_loss` in
    descending order; `created_at`, `name`, `metrics.<m>.best|final` and `params.<p>` as they are."""
    if not text:
        return None
    sign, key = ("-", text[1:]) if text.startswith("-") else ("", text)
    if key in FIXED_SORTS or key.startswith(("metrics.", "params.")):
        return text
    return f"{sign}metrics.{key}.best"


def sort_values_joined(argv: list[str]) -> list[str]:
    """`--sort -val_loss` as `--sort=-val_loss`: argparse takes a value that starts with '-' for an option."""
    joined: list[str] = []
    for argument in argv:
        if joined and joined[-1] == "--sort" and argument.startswith("-") and argument != "--":
            joined[-1] = f"--sort={argument}"
        else:
            joined.append(argument)
    return joined


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned on their widest cell (text cells at most 40 characters)."""
    cells = [[str(cell) if len(str(cell)) <= 40 else str(cell)[:39] + "…" for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def sorted_value(job: dict[str, Any], key: str | None) -> Any:
    """The value a job is sorted by (`metrics.<m>.<field>` or `params.<p>`), for its column."""
    key = (key or "").lstrip("-")
    if key.startswith("metrics."):
        metric, _, field = key.removeprefix("metrics.").rpartition(".")
        return ((job.get("metrics") or {}).get(metric) or {}).get(field)
    if key.startswith("params."):
        return (job.get("params") or {}).get(key.removeprefix("params."))
    return None


def jobs_list(client: Client, args: argparse.Namespace, model_id: str | None) -> int:
    """`kerasd jobs list`: the jobs as a table (with the value sorted by, when it is a metric or param)."""
    sort = sort_key(args.sort)
    page = client.jobs.list(status=args.status, model_id=model_id, tags=args.tag, name=args.name, sort=sort,
                            limit=args.limit)
    if args.json:
        print(json.dumps({"items": list(page), "total": page.total, "next_cursor": page.next_cursor}, indent=2))
        return 0
    extra = [sort.lstrip("-")] if sort and sort.lstrip("-") not in FIXED_SORTS else []
    rows = [[job["id"], job.get("name") or "", ",".join(job.get("tags") or []), job["kind"],
             job["status"] + (f" #{job['queue_position']}" if job.get("queue_position") else ""),
             *[_number(sorted_value(job, sort))] * len(extra), str(job.get("created_at", ""))[:19]] for job in page]
    print(table(["ID", "NAME", "TAGS", "KIND", "STATUS", *extra, "CREATED"], rows) if rows else "no jobs")
    return 0


def _jobs_tag(client: Client, args: argparse.Namespace) -> int:
    change = {"remove_tags": args.tags} if args.remove else {"add_tags": args.tags}
    job = client.jobs.update(job_id(client, args.id), **change)
    _say(args, job, f"{job['id']}  tags: {', '.join(job['tags']) or '(none)'}")
    return 0


def _jobs_update(client: Client, args: argparse.Namespace) -> int:
    fields = {name: value for name, value in (("name", args.name), ("notes", args.notes)) if value is not UNSET}
    if args.tags is not UNSET:
        fields["tags"] = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
    if not fields:
        raise SystemExit("kerasd jobs update: give --name, --notes or --tags (an empty value clears it)")
    fields = {name: (value or None) if name != "tags" else value for name, value in fields.items()}
    job = client.jobs.update(job_id(client, args.id), **fields)
    _say(args, job, f"{job['id']}  name: {job.get('name') or '(none)'}  tags: {', '.join(job['tags']) or '(none)'}")
    return 0


def _jobs_compare(client: Client, args: argparse.Namespace) -> int:
    compared = client.jobs.compare([job_id(client, text) for text in args.ids])
    if args.json:
        print(json.dumps({"runs": compared.runs, "metric_names": compared.metric_names,
                          "param_names": compared.param_names, "differing_params": compared.differing_params},
                         indent=2))
        return 0
    runs = compared.runs
    header = ["", *[run.get("name") or run["id"][:8] for run in runs]]
    rows = [["status", *[run["status"] for run in runs]]]
    names = compared.param_names if args.all_params else compared.differing_params
    rows += [[name, *[_number((run.get("params") or {}).get(name)) for run in runs]] for name in names]
    for metric in compared.metric_names:
        for field in ("final", "best"):
            rows.append([f"{metric} ({field})",
                         *[_number(((run.get("metrics") or {}).get(metric) or {}).get(field)) for run in runs]])
    print(table(header, rows))
    if not args.all_params and len(runs) > 1:
        same = len(compared.param_names) - len(compared.differing_params)
        print(f"({same} params the same in every run not shown: --all-params shows them)")
    return 0


def _jobs_tensorboard(client: Client, args: argparse.Namespace) -> int:
    logdir = Path(args.logdir) if args.logdir else Path(tempfile.mkdtemp(prefix="kerasd-tensorboard-"))
    fetched, missing = tensorboard_logs.fetch(client, [job_id(client, text) for text in args.ids], logdir)
    for reason in missing.values():
        print(f"kerasd: {reason}", file=sys.stderr)
    if not fetched:
        print("kerasd: no TensorBoard logs to show", file=sys.stderr)
        return 1
    runs = ", ".join(path.name for path in fetched.values())
    print(f"TensorBoard logs of {len(fetched)} job(s) in {logdir} (runs: {runs})")
    command = tensorboard_logs.command(logdir, port=args.port, host=args.host)
    if args.no_start:
        print("start TensorBoard on them with: tensorboard --logdir " + str(logdir))
        return 0
    if not tensorboard_logs.installed():
        print("kerasd: TensorBoard is not installed here: pip install tensorboard (or 'kerasd[tensorboard]'), then "
              f"run: tensorboard --logdir {logdir}", file=sys.stderr)
        return 1
    print(f"starting TensorBoard at http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def _say(args: argparse.Namespace, value: Any, human: str) -> None:
    print(json.dumps(value, indent=2, default=str) if args.json else human)


def job_id(client: Client, text: str) -> str:
    """A job's id, given whole or as a unique prefix."""
    return cli_text.resolve_id(text, "job", client.jobs.list)


def add_commands(jobs: Any, jobs_list: argparse.ArgumentParser, command: Callable[..., Any],
                 client: Callable[[argparse.Namespace], Client]) -> None:
    """The filters and sort of `kerasd jobs list`, and the commands above under `kerasd jobs` (`command` as
    kerasd/cli_client.py makes them)."""
    def run(action: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: action(client(args), args)

    jobs_list.add_argument("--tag", action="append", default=None, help="only jobs with this tag (repeat: all of "
                                                                       "them)")
    jobs_list.add_argument("--name", default=None, help="only jobs whose name starts with this")
    jobs_list.add_argument("--sort", default=None, help="val_loss (its best value), -val_accuracy (descending), "
                           "metrics.loss.final, params.optimizer.learning_rate, name, created_at")

    tag = command(jobs, "tag", run(_jobs_tag), "add tags to a job (--remove: remove them)", with_id="job")
    tag.add_argument("tags", nargs="+")
    tag.add_argument("--remove", action="store_true")

    update = command(jobs, "update", run(_jobs_update), "change a job's name, notes or tags", with_id="job")
    update.add_argument("--name", default=UNSET, help="a name for the run ('' clears it)")
    update.add_argument("--notes", default=UNSET, help="free text ('' clears it)")
    update.add_argument("--tags", default=UNSET, help="the whole list of tags, comma-separated ('' clears them)")

    compare = command(jobs, "compare", run(_jobs_compare), "runs side by side: params that differ, final and best "
                                                           "metrics")
    compare.add_argument("ids", nargs="+", metavar="ID", help="jobs' ids, or unique prefixes of them")
    compare.add_argument("--all-params", action="store_true", help="also the params every run has the same")

    board = command(jobs, "tensorboard", run(_jobs_tensorboard), "fetch jobs' TensorBoard logs into one directory "
                                                                 "and start TensorBoard on them")
    board.add_argument("ids", nargs="+", metavar="ID", help="jobs' ids, or unique prefixes of them")
    board.add_argument("--logdir", default=None, help="where the logs go, a run per job (default: a new temporary "
                                                      "directory)")
    board.add_argument("--port", type=int, default=6006)
    board.add_argument("--host", default="127.0.0.1", help="the address TensorBoard listens on")
    board.add_argument("--no-start", action="store_true", help="only fetch the logs")
