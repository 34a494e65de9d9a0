"""The `kerasd registry` commands:

    kerasd registry list                             your registered models, their newest version and aliases
    kerasd registry get NAME | NAME/3 | NAME@ALIAS   a model's versions, or one version with its lineage
    kerasd registry register JOB NAME [--description TEXT]    a version of NAME from a succeeded fit job
    kerasd registry alias NAME/3 ALIAS               point ALIAS at version 3 (--delete: remove ALIAS of NAME)
    kerasd registry download NAME/3 [FILE] [-o PATH] model.keras (default), weights.h5, architecture.json, ...
    kerasd registry export NAME/3 --sample DATASET[:ARRAY]   a SavedModel, verified against Keras on those rows

A table or summary on the terminal; --json prints the API's answers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasd import cli_text
from kerasd.cli_experiments import table
from kerasd.client import Client


def _print(args: argparse.Namespace, value: Any, human: str) -> None:
    print(json.dumps(value, indent=2, default=str) if args.json else human)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def version_text(version: dict[str, Any]) -> str:
    """A version and its lineage, for a terminal."""
    lineage = version["lineage"]
    job, trained = lineage["job"], lineage.get("trained_with") or {}
    lines = [f"{version['reference']}  {version['description']}".rstrip(),
             f"  aliases   {', '.join(version['aliases']) or '-'}",
             f"  job       {job['id']} ({job.get('name') or 'unnamed'}, {job['attempts']} attempt(s)"
             f"{', sweep ' + job['sweep_id'] if job.get('sweep_id') else ''})",
             f"  model     {lineage['model']['id']} ({lineage['model']['name']})",
             f"  seed      {lineage['seed']}"]
    for dataset in lineage["datasets"]:
        arrays = ", ".join(f"{a['argument']}={a['array']}{tuple(a['shape'])}" for a in dataset["arrays"])
        lines.append(f"  dataset   sha256 {dataset['sha256'][:16]}…  {arrays}")
    metrics = ", ".join(f"{name} {_number(summary['final'])}" for name, summary in lineage["metrics"].items())
    lines.append(f"  metrics   {metrics or '-'}")
    if trained:
        lines.append(f"  trained   kerasd {trained.get('kerasd')}, keras {trained.get('keras')} on "
                     f"{trained.get('backend')} {trained.get('backend_version')}, worker {trained.get('worker')}")
    lines += [f"  file      {a['name']:<20} {a['size_bytes']:>12,} bytes  sha256 {a['sha256'][:16]}…"
              for a in version["artifacts"]]
    return "\n".join(lines)


def _list(client: Client, args: argparse.Namespace) -> int:
    found = client.registry.list()
    rows = [[m["name"], _number(m["latest_version"]) or "-",
             ", ".join(f"{alias}→{number}" for alias, number in m["aliases"].items()) or "-", m["description"]]
            for m in found]
    _print(args, found, table(["NAME", "LATEST", "ALIASES", "DESCRIPTION"], rows) if rows else "no registered models")
    return 0


def _get(client: Client, args: argparse.Namespace) -> int:
    found = client.registry.get(args.reference)
    if "versions" not in found:
        _print(args, found, version_text(found))
        return 0
    rows = [[v["version"], ", ".join(v["aliases"]) or "-", v["job_id"][:8],
             ", ".join(f"{n} {_number(s['final'])}" for n, s in list(v["lineage"]["metrics"].items())[:3]),
             v["description"]] for v in found["versions"]]
    _print(args, found, f"{found['name']}  {found['description']}".rstrip() + "\n" + (
        table(["VERSION", "ALIASES", "JOB", "METRICS (FINAL)", "DESCRIPTION"], rows) if rows else "no versions yet"))
    return 0


def _register(client: Client, args: argparse.Namespace) -> int:
    job_id = cli_text.resolve_id(args.job, "job", client.jobs.list)
    version = client.registry.register(job_id, args.name, description=args.description)
    _print(args, version, f"registered {version['reference']} from job {job_id}")
    return 0


def _alias(client: Client, args: argparse.Namespace) -> int:
    if args.delete:
        name = args.reference.split("/")[0].split("@")[0]
        client.registry.delete_alias(name, args.alias)
        _print(args, {"name": name, "alias": args.alias, "deleted": True}, f"alias {args.alias} of {name} removed")
        return 0
    moved = client.registry.set_alias(args.reference, args.alias)
    before = moved["previous_version"]
    _print(args, moved, f"{moved['name']}@{moved['alias']} → version {moved['version']}"
                        + (f" (was {before})" if before not in (None, moved["version"]) else ""))
    return 0


def _download(client: Client, args: argparse.Namespace) -> int:
    path = client.registry.download(args.reference, args.file, args.output or Path.cwd())
    _print(args, {"path": str(path), "bytes": Path(path).stat().st_size}, str(path))
    return 0


def _export(client: Client, args: argparse.Namespace) -> int:
    sample = None
    if args.sample:
        dataset, _, array = args.sample.partition(":")
        sample = {"dataset_id": dataset, **({"array": array} if array else {})}
    report = client.registry.export(args.reference, args.format, sample=sample, timeout=args.timeout)
    check = report["verification"] or {}
    worst = max((check.get("max_abs_diff") or {}).values(), default=None)
    _print(args, report, f"{report['reference']} {report['format']}: {check.get('status')} (largest difference "
                         f"{worst:.1e} over {check.get('rows')} "
                         f"{'generated ' if (check.get('sample') or {}).get('generated') else ''}rows, tolerance "
                         f"{check.get('tolerance')}); file "
                         f"{(report['file'] or {}).get('url')}")
    return 0 if check.get("status") == "verified" else 1


def add_commands(registry: Any, command: Callable[..., Any], client: Callable[[argparse.Namespace], Client]) -> None:
    """The commands above under `kerasd registry` (`command` as kerasd/cli_client.py makes them)."""
    def run(action: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: action(client(args), args)

    command(registry, "list", run(_list), "your registered models")
    get = command(registry, "get", run(_get), "a registered model's versions, or one version (NAME/3, NAME@ALIAS) "
                                              "with its lineage")
    get.add_argument("reference", help="NAME, NAME/3 or NAME@ALIAS")
    register = command(registry, "register", run(_register), "a new version of NAME from a succeeded fit job")
    register.add_argument("job", help="the job's id, or a unique prefix of it")
    register.add_argument("name", help="the registered model (made if you have none of that name)")
    register.add_argument("--description", default="")
    alias = command(registry, "alias", run(_alias), "point an alias at a version (moved there if it pointed "
                                                    "elsewhere)")
    alias.add_argument("reference", help="NAME/3: the version the alias points at (NAME with --delete)")
    alias.add_argument("alias")
    alias.add_argument("--delete", action="store_true", help="remove the alias instead")
    download = command(registry, "download", run(_download), "a version's file, its sha256 checked")
    download.add_argument("reference", help="NAME/3 or NAME@ALIAS")
    download.add_argument("file", nargs="?", default="model.keras",
                          help="model.keras (default), weights.h5, architecture.json, model.h5, ...")
    download.add_argument("-o", "--output", default=None, help="a file, or a directory (default: here)")
    export = command(registry, "export", run(_export), "export a version and verify the file against Keras's "
                                                       "predictions (exit 1 on a mismatch)")
    export.add_argument("reference", help="NAME/3 or NAME@ALIAS")
    export.add_argument("--sample", default=None, help="DATASET_ID or DATASET_ID:ARRAY: the rows to verify on "
                                                       "(default: 100 rows generated from the model's inputs)")
    export.add_argument("--format", default="tf_saved_model", choices=["tf_saved_model", "onnx", "litert"],
                        help="tf_saved_model (TensorFlow Serving), onnx (onnxruntime, Triton) or litert (.tflite)")
    export.add_argument("--timeout", type=float, default=600, help="seconds to wait for the export job")
