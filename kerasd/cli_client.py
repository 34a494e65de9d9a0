"""The client commands of `kerasd`, on the same Client as the SDK:

    kerasd models create FILE | list | get ID | delete ID        FILE: a spec / Keras JSON, YAML, .keras or .h5
    kerasd datasets upload FILE | list | get ID | delete ID      FILE: .npy, .npz, or CSV with a header row
    kerasd jobs submit FILE [--watch]  a job as YAML or JSON (the body of POST /v1/jobs)
    kerasd jobs watch ID               live progress until the job ends (exit 0 only if it succeeded)
    kerasd jobs list | get ID | cancel ID | retry ID | delete ID
    kerasd jobs tag | update | compare | tensorboard      runs as experiments (kerasd/cli_experiments.py)
    kerasd artifacts list ID | get ID NAME -o PATH
    kerasd sweeps create FILE [--wait] | list | get ID | cancel ID    (kerasd/cli_sweeps.py)
    kerasd registry list | get REF | register JOB NAME | alias NAME/3 ALIAS | download REF [FILE] | export REF
                                       registered models and their versions (kerasd/cli_registry.py)

The server and key come from --url / --api-key or KERASD_URL / KERASD_API_KEY; --json prints the API's
answers for scripts. An ID may be given whole or as a unique prefix (the dashboard shows its first 8 characters).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kerasd import cli_experiments, cli_registry, cli_sweeps, cli_text
from kerasd.client import Client
from kerasd.errors import KerasdError
from kerasd.progress import FitDisplay, QueueNotice
from kerasd.resources import JOB_STATUSES

INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


def _client(args: argparse.Namespace) -> Client:
    client = Client(args.url, api_key=args.api_key, verbose=0 if args.json else 1)
    if args.url:
        client.url_source = "--url"
    return client


def _emit(args: argparse.Namespace, value: Any, human: str) -> None:
    print(json.dumps(value, indent=2, default=str) if args.json else human)


def _id(client: Client, args: argparse.Namespace, kind: str) -> str:
    resource = {"job": client.jobs, "model": client.models, "dataset": client.datasets}[kind]
    return cli_text.resolve_id(args.id, kind, resource.list)


def _named_job(args: argparse.Namespace) -> tuple[Client, str]:
    """The client, and the id of the job the command names (by its id or a prefix of it)."""
    client = _client(args)
    return client, _id(client, args, "job")


def _load_document(path: str) -> Any:
    text = Path(path).read_text()
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SystemExit("reading YAML needs PyYAML: pip install pyyaml (or give the job as JSON)") from None
        return yaml.safe_load(text)
    return json.loads(text)


# --- models and datasets ------------------------------------------------------------------------------


def _models_create(args: argparse.Namespace) -> int:
    model = _client(args).models.create(args.file, name=args.name)
    _emit(args, model, cli_text.model_row(model))
    return 0


def _datasets_upload(args: argparse.Namespace) -> int:
    try:
        dataset = _client(args).datasets.upload(
            args.file, name=args.name, x_columns=args.x_columns, y_columns=args.y_columns
        )
    except ValueError as exc:  # a file the SDK refuses before sending it, with what to do
        raise KerasdError(str(exc)) from None
    _emit(args, dataset, cli_text.dataset_row(dataset))
    return 0


def _lister(kind: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        page = getattr(_client(args), f"{kind}s").list(limit=args.limit)
        row = getattr(cli_text, f"{kind}_row")
        _emit(args, {"items": list(page), "total": page.total}, "\n".join(row(item) for item in page) or f"no {kind}s")
        return 0

    return run


def _getter(kind: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        client = _client(args)
        found = getattr(client, f"{kind}s").get(_id(client, args, kind))
        _emit(args, found, getattr(cli_text, f"{kind}_text")(found))
        return 0

    return run


def _deleter(kind: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        client = _client(args)
        found = _id(client, args, kind)
        getattr(client, f"{kind}s").delete(found)
        _emit(args, {"id": found, "deleted": True}, f"{kind} {found} deleted")
        return 0

    return run


# --- jobs -------------------------------------------------------------------------------------------


def _watch(client: Client, job_id: str, args: argparse.Namespace) -> int:
    verbose = 0 if args.json else 1
    try:
        notice = QueueNotice(job_id, verbose=verbose)
        started = client.jobs.wait_started(job_id, on_queued=notice.update)
        notice.close(started)
        fit = (started.get("request") or {}).get("fit") or {}
        display = FitDisplay(epochs=fit.get("epochs"), verbose=verbose)
        for event in client.jobs.events(job_id, on_reconnect=lambda message: print(message, file=sys.stderr)):
            display.handle(event)
        job = client.jobs.get(job_id)
    except KeyboardInterrupt:
        print(
            f"\nkerasd: stopped watching. Job {job_id} goes on running on the server: `kerasd jobs watch "
            f"{job_id}` follows it again, `kerasd jobs cancel {job_id}` stops it.",
            file=sys.stderr,
        )
        return INTERRUPTED
    error = job.get("error") or {}
    detail = f": {error.get('type')}: {error.get('message')}" if error else ""
    _emit(args, job, f"job {job_id} {job['status']}{detail}")
    return 0 if job["status"] == "succeeded" else 1


def _jobs_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.jobs.create(_load_document(args.file))
    if args.watch:
        if not args.json:
            print(f"job {job['id']} {job['status']}")
        return _watch(client, job["id"], args)
    _emit(args, job, f"{job['id']}  {job['kind']}  {job['status']}")
    return 0


def _jobs_watch(args: argparse.Namespace) -> int:
    client, job_id = _named_job(args)
    return _watch(client, job_id, args)


def _jobs_list(args: argparse.Namespace) -> int:
    client = _client(args)
    model_id = cli_text.resolve_id(args.model_id, "model", client.models.list) if args.model_id else None
    return cli_experiments.jobs_list(client, args, model_id)


def _jobs_cancel(args: argparse.Namespace) -> int:
    client, job_id = _named_job(args)
    job = client.jobs.cancel(job_id)
    _emit(args, job, f"{job_id}  cancel requested ({(job or {}).get('status')})")
    return 0


def _jobs_retry(args: argparse.Namespace) -> int:
    client, job_id = _named_job(args)
    job = client.jobs.retry(job_id)
    _emit(args, job, f"{job_id}  {job['status']} (attempt {job.get('attempt')})")
    return 0


def _artifacts_list(args: argparse.Namespace) -> int:
    client, job_id = _named_job(args)
    found = client.jobs.artifacts(job_id)
    _emit(
        args,
        found,
        "\n".join(f"{item['name']:<24} {item['size_bytes']:>12,} bytes  {item['media_type']}" for item in found)
        or "no artifacts",
    )
    return 0


def _artifacts_get(args: argparse.Namespace) -> int:
    client, job_id = _named_job(args)
    path = client.jobs.artifact(job_id, args.name, args.output or Path.cwd())
    _emit(args, {"path": str(path), "bytes": Path(path).stat().st_size}, str(path))
    return 0


# --- the parser --------------------------------------------------------------------------------------


def add_client_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help="the kerasd API (default KERASD_URL or http://127.0.0.1:8000)")
    common.add_argument("--api-key", default=None, help="API key (default KERASD_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answers")

    def group(name: str, help_text: str) -> Any:
        parser = commands.add_parser(name, help=help_text)
        return parser.add_subparsers(dest=f"{name}_command", required=True)

    def command(parent: Any, name: str, run: Any, help_text: str, *, with_id: str | None = None) -> Any:
        parser = parent.add_parser(name, parents=[common], help=help_text)
        if with_id:
            parser.add_argument("id", help=f"the {with_id}'s id, or a unique prefix of it")
        parser.set_defaults(run=run)
        return parser

    def listing(parent: Any, kind: str) -> Any:
        parser = command(parent, "list", _lister(kind) if kind != "job" else _jobs_list, "newest first")
        parser.add_argument("--limit", type=int, default=50)
        return parser

    models = group("models", "models on a kerasd server")
    create = command(models, "create", _models_create, "from a .json, .yaml, .keras or .h5 file")
    create.add_argument("file")
    create.add_argument("--name", default=None)
    listing(models, "model")
    command(models, "get", _getter("model"), "a model's layers and parameters", with_id="model")
    command(models, "delete", _deleter("model"), "delete a model no job uses", with_id="model")

    datasets = group("datasets", "numpy arrays and CSV files on a kerasd server")
    upload = command(datasets, "upload", _datasets_upload, "a .npy, .npz, or CSV file with a header row")
    upload.add_argument("file")
    upload.add_argument("--name", default=None)
    upload.add_argument(
        "--x-columns", default=None, help="CSV: feature columns, comma-separated (default: all but the y columns)"
    )
    upload.add_argument("--y-columns", default=None, help="CSV: target columns, comma-separated")
    listing(datasets, "dataset")
    command(datasets, "get", _getter("dataset"), "a dataset's arrays, shapes and dtypes", with_id="dataset")
    command(
        datasets, "delete", _deleter("dataset"), "delete a dataset no queued or running job uses", with_id="dataset"
    )

    jobs = group("jobs", "submit, follow and manage jobs")
    submit = command(jobs, "submit", _jobs_submit, "a job as YAML or JSON (the body of POST /v1/jobs)")
    submit.add_argument("file")
    submit.add_argument("--watch", action="store_true", help="then follow it with a progress bar")
    command(jobs, "watch", _jobs_watch, "a live progress bar until the job ends", with_id="job")
    command(jobs, "get", _getter("job"), "a job's status, times, last metrics and error", with_id="job")
    command(jobs, "cancel", _jobs_cancel, "stop a queued or running job", with_id="job")
    command(jobs, "retry", _jobs_retry, "run a failed or cancelled job again", with_id="job")
    command(jobs, "delete", _deleter("job"), "delete an ended job and its artifacts", with_id="job")
    jobs_list = listing(jobs, "job")
    jobs_list.add_argument("--status", default=None, choices=JOB_STATUSES)
    jobs_list.add_argument("--model-id", default=None, help="a model's id, or a unique prefix of it")
    cli_experiments.add_commands(jobs, jobs_list, command, _client)

    cli_sweeps.add_commands(group, command, _client, _load_document)

    artifacts = group("artifacts", "what jobs produced")
    command(artifacts, "list", _artifacts_list, "a job's files: names and sizes", with_id="job")
    get = command(artifacts, "get", _artifacts_get, "weights.h5, model.keras, architecture.json, ...", with_id="job")
    get.add_argument("name")
    get.add_argument("-o", "--output", default=None, help="a file, or a directory (default: here)")

    cli_registry.add_commands(group("registry", "registered models, their versions and aliases"), command, _client)


def run_client_command(args: argparse.Namespace) -> int:
    """Runs a client command; API errors become a message and exit status 1, as a CLI should."""
    try:
        return args.run(args)
    except KerasdError as exc:
        print(f"kerasd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nkerasd: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `kerasd jobs list | head`
        return 0
