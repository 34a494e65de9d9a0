"""`kerasd admin`: tenants and API keys, straight on the database the server uses (KERASD_DATABASE_URL).

This is how the first key comes to be; after that an admin key can do the same over HTTP (/v1/admin/...).
Needs the server extras (`pip install 'kerasd[api]'`), like `kerasd migrate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

QUOTA_OPTIONS = {  # option -> (tenant column, type)
    "max_running_jobs": int, "max_queued_jobs": int, "max_stored_bytes": int, "requests_per_s": float,
    "request_burst": int,
}


def _quota_value(kind: type):
    def parse(text: str) -> Any:
        if text.lower() in ("default", "none"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'default')") from None

    return parse


def _add_quota_options(parser: argparse.ArgumentParser) -> None:
    for field, kind in QUOTA_OPTIONS.items():
        parser.add_argument(f"--{field.replace('_', '-')}", dest=field, type=_quota_value(kind),
                            default=argparse.SUPPRESS, help="0 for no limit, 'default' for the server's setting")


def _quotas(args: argparse.Namespace) -> dict[str, Any]:
    return {field: getattr(args, field) for field in QUOTA_OPTIONS if hasattr(args, field)}


def _tenant_doc(session, tenant) -> dict[str, Any]:
    from app.core.quotas import limits_of
    from app.core.settings import get_settings
    from app.tenants.service import QUOTA_FIELDS, usage

    return {"id": tenant.id, "name": tenant.name, "quotas": {f: getattr(tenant, f) for f in QUOTA_FIELDS},
            "limits": vars(limits_of(tenant, get_settings())), "usage": usage(session, tenant.id)}


def _key_doc(row) -> dict[str, Any]:
    return {"id": row.id, "tenant_id": row.tenant_id, "name": row.name, "prefix": row.prefix, "role": row.role,
            "created_at": row.created_at.isoformat(), "revoked_at": row.revoked_at and row.revoked_at.isoformat()}


def _print(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from app.core.database import session_scope
    from app.core.errors import Problem
    from app.tenants import service

    try:
        if args.admin_command == "gc-blobs":
            from app.core.blob_gc import collect_blobs

            found = collect_blobs(grace_s=args.grace_s, limit=args.limit)
            _print(args, {"blobs": found.blobs, "bytes": found.bytes},
                   f"deleted {found.blobs} unreferenced blob(s), {found.bytes:,} bytes")
            return 0
        with session_scope() as session:
            if args.admin_command == "create-tenant":
                tenant = service.create_tenant(session, name=args.name, quotas=_quotas(args))
                _print(args, _tenant_doc(session, tenant), f"tenant {tenant.name}: id {tenant.id}\n"
                       f"make it a key: kerasd admin create-key {tenant.name}")
            elif args.admin_command == "set-quota":
                tenant = service.get_tenant(session, ident=args.tenant)
                service.set_quotas(session, tenant=tenant, quotas=_quotas(args))
                doc = _tenant_doc(session, tenant)
                _print(args, doc, f"tenant {tenant.name}: limits now {doc['limits']}")
            elif args.admin_command == "list-tenants":
                docs = [_tenant_doc(session, t) for t in service.list_tenants(session)]
                _print(args, docs, "\n".join(f"{d['id']}  {d['name']}  usage {d['usage']}" for d in docs))
            elif args.admin_command == "create-key":
                tenant = service.get_tenant(session, ident=args.tenant)
                row, key = service.create_key(session, tenant=tenant, name=args.name, role=args.role)
                _print(args, {**_key_doc(row), "key": key},
                       f"{key}\n(key {row.prefix}, role {row.role}, tenant {tenant.name}: shown this once, only its "
                       "hash is kept; send it as 'Authorization: Bearer <key>' or set KERASD_API_KEY)")
            elif args.admin_command == "list-keys":
                tenant = service.get_tenant(session, ident=args.tenant)
                rows = service.list_keys(session, tenant_id=tenant.id)
                _print(args, [_key_doc(r) for r in rows], "\n".join(
                    f"{r.id}  {r.prefix}  {r.role:5}  {'revoked' if r.revoked_at else 'active '}  {r.name}"
                    for r in rows))
            elif args.admin_command == "revoke-key":
                row = service.revoke_key(session, ident=args.key)
                _print(args, _key_doc(row), f"key {row.prefix} ({row.id}) revoked")
    except Problem as exc:
        print(f"kerasd admin: {exc.detail}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        print(f"kerasd admin: the database is not ready ({exc.__class__.__name__}: "
              f"{str(exc.orig).splitlines()[0] if exc.orig else exc}); check KERASD_DATABASE_URL and run "
              "`kerasd migrate`", file=sys.stderr)
        return 2
    return 0


def add_admin_commands(commands: argparse._SubParsersAction) -> None:
    admin = commands.add_parser("admin", help="tenants and API keys (on the server's database)")
    sub = admin.add_subparsers(dest="admin_command", required=True)

    create_tenant = sub.add_parser("create-tenant", help="a new tenant, with quotas of its own if given")
    create_tenant.add_argument("name")
    _add_quota_options(create_tenant)

    set_quota = sub.add_parser("set-quota", help="change a tenant's quotas")
    set_quota.add_argument("tenant", help="tenant id or name")
    _add_quota_options(set_quota)

    sub.add_parser("list-tenants", help="every tenant with its usage")

    create_key = sub.add_parser("create-key", help="a new API key for a tenant, printed this once")
    create_key.add_argument("tenant", help="tenant id or name")
    create_key.add_argument("--name", default="", help="what the key is for")
    create_key.add_argument("--role", choices=("user", "admin"), default="user",
                            help="admin keys may also manage tenants and keys over HTTP")

    list_keys = sub.add_parser("list-keys", help="a tenant's keys (prefixes, never the keys)")
    list_keys.add_argument("tenant", help="tenant id or name")

    revoke = sub.add_parser("revoke-key", help="revoke a key: its requests are 401 from now on")
    revoke.add_argument("key", help="the key's id or its prefix (kd_xxxxxxxx)")

    gc_blobs = sub.add_parser("gc-blobs", help="delete stored bytes nothing refers to any more (workers also do "
                              "this every KERASD_BLOB_GC_INTERVAL_S)")
    gc_blobs.add_argument("--grace-s", type=float, default=3600.0,
                          help="spare blobs younger than this many seconds (default 3600)")
    gc_blobs.add_argument("--limit", type=int, default=100_000, help="at most this many blobs")

    for parser in (create_tenant, set_quota, create_key, list_keys, revoke, gc_blobs, sub.choices["list-tenants"]):
        parser.add_argument("--json", action="store_true", help="print JSON")
    admin.set_defaults(run=_run)
