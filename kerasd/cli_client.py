"""The client commands of `kerasd`, on the same Client as the SDK:

    kerasd models create FILE          a spec / Keras JSON (.json), YAML (.yaml) or a saved model (.keras, .h5)
    kerasd datasets upload FILE        a .npy or .npz (nothing is sent when the server has the same bytes)
    kerasd jobs submit FILE [--watch]  a job as YAML or JSON (the body of POST /v1/jobs)
    kerasd jobs watch ID               live progress bar until the job ends (exit 0 only if it succeeded)
    kerasd jobs list | get ID | cancel ID | retry ID
    kerasd artifacts get ID NAME -o PATH

The server and key come from --url / --api-key or KERASD_URL / KERASD_API_KEY; --json prints the API's
answers for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kerasd.client import Client
from kerasd.errors import KerasdError
from kerasd.progress import FitDisplay


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, api_key=args.api_key, verbose=0 if args.json else 1)


def _emit(args: argparse.Namespace, value: Any, human: str) -> None:
    print(json.dumps(value, indent=2, default=str) if args.json else human)


def _load_document(path: str) -> Any:
    text = Path(path).read_text()
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SystemExit("reading YAML needs PyYAML: pip install pyyaml (or give the job as JSON)") from None
        return yaml.safe_load(text)
    return json.loads(text)


def _models_create(args: argparse.Namespace) -> int:
    model = _client(args).models.create(args.file, name=args.name)
    summary = model.get("summary") or {}
    _emit(args, model, f"{model['id']}  {model.get('name')}  params: {summary.get('total_params')}")
    return 0


def _datasets_upload(args: argparse.Namespace) -> int:
    dataset = _client(args).datasets.upload(args.file, name=args.name)
    arrays = ", ".join(f"{a['name']}{tuple(a['shape'])} {a['dtype']}" for a in dataset.get("arrays", []))
    _emit(args, dataset, f"{dataset['id']}  {arrays}")
    return 0


def _watch(client: Client, job_id: str, args: argparse.Namespace) -> int:
    fit = (client.jobs.get(job_id).get("request") or {}).get("fit") or {}
    display = FitDisplay(epochs=fit.get("epochs"), verbose=0 if args.json else 1)
    for event in client.jobs.events(job_id):
        display.handle(event)
    job = client.jobs.get(job_id)
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
    return _watch(_client(args), args.id, args)


def _jobs_list(args: argparse.Namespace) -> int:
    page = _client(args).jobs.list(status=args.status, model_id=args.model_id, limit=args.limit)
    lines = [f"{j['id']}  {j['kind']:<8} {j['status']:<10} {j.get('created_at', '')}" for j in page]
    _emit(args, {"items": list(page), "total": page.total}, "\n".join(lines) or "no jobs")
    return 0


def _jobs_get(args: argparse.Namespace) -> int:
    job = _client(args).jobs.get(args.id)
    last = {key: values[-1] for key, values in (job.get("history") or {}).items() if values}
    _emit(args, job, f"{job['id']}  {job['kind']}  {job['status']}  attempt {job.get('attempt')}  {last}")
    return 0


def _jobs_cancel(args: argparse.Namespace) -> int:
    job = _client(args).jobs.cancel(args.id)
    _emit(args, job, f"{args.id}  cancel requested ({(job or {}).get('status')})")
    return 0


def _jobs_retry(args: argparse.Namespace) -> int:
    job = _client(args).jobs.retry(args.id)
    _emit(args, job, f"{args.id}  {job['status']} (attempt {job.get('attempt')})")
    return 0


def _artifacts_get(args: argparse.Namespace) -> int:
    path = _client(args).jobs.artifact(args.id, args.name, args.output or Path.cwd())
    _emit(args, {"path": str(path), "bytes": Path(path).stat().st_size}, str(path))
    return 0


def add_client_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help="the kerasd API (default KERASD_URL or http://127.0.0.1:8000)")
    common.add_argument("--api-key", default=None, help="API key (default KERASD_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answers")

    def group(name: str, help_text: str) -> Any:
        parser = commands.add_parser(name, help=help_text)
        return parser.add_subparsers(dest=f"{name}_command", required=True)

    models = group("models", "create models on a kerasd server")
    create = models.add_parser("create", parents=[common], help="from a .json, .yaml, .keras or .h5 file")
    create.add_argument("file")
    create.add_argument("--name", default=None)
    create.set_defaults(run=_models_create)

    datasets = group("datasets", "upload numpy arrays")
    upload = datasets.add_parser("upload", parents=[common], help="a .npy or .npz file")
    upload.add_argument("file")
    upload.add_argument("--name", default=None)
    upload.set_defaults(run=_datasets_upload)

    jobs = group("jobs", "submit, follow and manage jobs")
    submit = jobs.add_parser("submit", parents=[common], help="a job as YAML or JSON (the body of POST /v1/jobs)")
    submit.add_argument("file")
    submit.add_argument("--watch", action="store_true", help="then follow it with a progress bar")
    submit.set_defaults(run=_jobs_submit)
    for name, run, help_text in (("watch", _jobs_watch, "a live progress bar until the job ends"),
                                 ("get", _jobs_get, "a job's status and last metrics"),
                                 ("cancel", _jobs_cancel, "stop a queued or running job"),
                                 ("retry", _jobs_retry, "run a failed or cancelled job again")):
        command = jobs.add_parser(name, parents=[common], help=help_text)
        command.add_argument("id")
        command.set_defaults(run=run)
    listing = jobs.add_parser("list", parents=[common], help="newest first")
    listing.add_argument("--status", default=None)
    listing.add_argument("--model-id", default=None)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=_jobs_list)

    artifacts = group("artifacts", "download what jobs produced")
    get = artifacts.add_parser("get", parents=[common], help="weights.h5, model.keras, architecture.json, ...")
    get.add_argument("id")
    get.add_argument("name")
    get.add_argument("-o", "--output", default=None, help="a file, or a directory (default: here)")
    get.set_defaults(run=_artifacts_get)


def run_client_command(args: argparse.Namespace) -> int:
    """Runs a client command; API errors become a message and exit status 1, as a CLI should."""
    try:
        return args.run(args)
    except KerasdError as exc:
        print(f"kerasd: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `kerasd jobs list | head`
        return 0
