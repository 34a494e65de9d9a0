"""`kerasd migrate` on a new database, and `kerasd admin` set-quota, list-tenants and list-keys, run as commands
on the session's PostgreSQL; what they change is seen by the real API that requires keys."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

from tests.holds import wait_until
from tests.services import create_database, drop_database, kerasd_command
from tests.tenancy import keyed_client


def kerasd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(kerasd_command(*args), env=env, capture_output=True, text=True, timeout=300)


def test_migrate_brings_a_new_database_to_the_newest_schema(server_env):
    import psycopg
    from alembic.script import ScriptDirectory

    from app.core.migrate import alembic_config

    name = f"kerasd_migrate_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        env = {**server_env, "KERASD_DATABASE_URL": url}
        for _ in range(2):  # the second run finds nothing to do
            done = kerasd(env, "migrate")
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "kerasd: database is at the newest schema"
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"jobs", "tenants", "api_keys", "blobs", "weights_files"} <= tables, tables
    finally:
        drop_database(name)


def test_admin_set_quota_list_tenants_and_list_keys(keyed_api, keyed_env):
    url = keyed_api[0]
    name = f"cli-admin-{uuid.uuid4().hex[:8]}"
    assert kerasd(keyed_env, "admin", "create-tenant", name).returncode == 0
    made = json.loads(kerasd(keyed_env, "admin", "create-key", name, "--name", "ci", "--json").stdout)

    changed = kerasd(keyed_env, "admin", "set-quota", name, "--max-queued-jobs", "3", "--requests-per-s", "50",
                     "--json")
    assert changed.returncode == 0, changed.stderr
    document = json.loads(changed.stdout)
    assert document["name"] == name and document["quotas"]["max_queued_jobs"] == 3
    assert document["limits"]["queued_jobs"] == 3 and document["limits"]["requests_per_s"] == 50
    # The API applies it within the few seconds its tenant cache keeps a tenant.
    with keyed_client(url, made["key"]) as client:
        wait_until(lambda: client.get("/v1/tenant").json()["limits"]["queued_jobs"] == 3, timeout_s=60,
                   what="the new quota applied by the API")
    back = json.loads(kerasd(keyed_env, "admin", "set-quota", name, "--max-queued-jobs", "default", "--json").stdout)
    assert back["quotas"]["max_queued_jobs"] is None and back["quotas"]["requests_per_s"] == 50

    listed = kerasd(keyed_env, "admin", "list-tenants", "--json")
    assert listed.returncode == 0, listed.stderr
    ours = [t for t in json.loads(listed.stdout) if t["name"] == name]
    assert len(ours) == 1 and ours[0]["id"] == document["id"] and ours[0]["quotas"]["requests_per_s"] == 50
    text = kerasd(keyed_env, "admin", "list-tenants").stdout
    assert re.search(rf"^{document['id']}  {name}  usage ", text, re.M), text

    keys = kerasd(keyed_env, "admin", "list-keys", name)
    assert keys.returncode == 0, keys.stderr
    assert re.fullmatch(rf"{made['id']}  {made['prefix']}  user   active   ci\n", keys.stdout), keys.stdout
    assert made["key"] not in keys.stdout
    assert kerasd(keyed_env, "admin", "revoke-key", made["prefix"]).returncode == 0
    revoked = json.loads(kerasd(keyed_env, "admin", "list-keys", document["id"], "--json").stdout)
    assert [(k["prefix"], k["revoked_at"] is not None) for k in revoked] == [(made["prefix"], True)]

    unknown = kerasd(keyed_env, "admin", "set-quota", f"no-such-{name}", "--max-queued-jobs", "1")
    assert unknown.returncode == 2 and f"no-such-{name}" in unknown.stderr, unknown.stderr
