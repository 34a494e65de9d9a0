"""API keys from the in-process key cache (app/tenants/key_cache.py): a revoked key is refused at once, in every API
process, though each process keeps the keys it has seen.

The integration test runs its own API with two uvicorn processes (`kerasd api --workers 2`) on the session's
PostgreSQL and Redis, keys required. Every request goes on a fresh connection, so the kernel hands them to
either process: both have the key cached before it is revoked (40 requests; both processes answer some of
them in practice, though nothing here can force it), and after the revocation through one process all 40
requests on fresh connections, and the kept-alive one, must be 401.
"""

from __future__ import annotations

import httpx
import pytest

from app.tenants.key_cache import KeyCache
from tests.services import kerasd_command, running_api
from tests.tenancy import make_tenant
from tests.test_bad_input import assert_problem

FRESH_CONNECTIONS = 40


def test_an_entry_is_dropped_when_the_generation_changes():
    cache: KeyCache[str] = KeyCache(ttl_s=60)
    cache.observe("g1")
    cache.put("digest", "caller", "g1")
    assert cache.get("digest") == ("caller", "g1")
    cache.observe("g1")
    assert len(cache) == 1
    cache.observe("g2")  # a key was revoked somewhere
    assert cache.get("digest") is None
    cache.put("digest", "caller", "g2")
    cache.observe(None)  # Redis cannot say: nothing cached is trusted
    assert cache.get("digest") is None


def test_an_entry_expires_and_a_ttl_of_zero_caches_nothing(monkeypatch):
    # The cache's clock is the test's: a loaded machine pausing between two lines cannot expire an entry early.
    from types import SimpleNamespace

    from app.tenants import key_cache

    now = [1000.0]
    monkeypatch.setattr(key_cache, "time", SimpleNamespace(monotonic=lambda: now[0]))
    cache: KeyCache[str] = KeyCache(ttl_s=0.05)
    cache.put("digest", "caller", "g")
    now[0] += 0.035  # under 75% of the TTL, the least an entry is kept
    assert cache.get("digest") is not None
    now[0] += 0.016  # past the whole TTL
    assert cache.get("digest") is None
    off: KeyCache[str] = KeyCache(ttl_s=0)
    off.put("digest", "caller", "g")
    assert off.get("digest") is None


@pytest.fixture(scope="module")
def two_process_api(keyed_env, logs_dir):
    with running_api(keyed_env, logs_dir / "two-process-api.log", "--workers", "2") as (url, _process):
        yield url


def fresh_statuses(url: str, key: str) -> list[int]:
    statuses = []
    for _ in range(FRESH_CONNECTIONS):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as fresh:
            statuses.append(fresh.get("/v1/jobs?status=running").status_code)
    return statuses


def test_a_revoked_key_is_refused_at_once_by_every_api_process(two_process_api):
    url = two_process_api
    _tenant, key = make_tenant("cached")
    _admin_tenant, admin_key = make_tenant("cache-admin", role="admin")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as kept:
        assert fresh_statuses(url, key) == [200] * FRESH_CONNECTIONS
        assert kept.get("/v1/jobs").status_code == 200
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60) as admin:
            assert admin.delete(f"/v1/admin/keys/{key[:11]}").status_code == 204
        assert fresh_statuses(url, key) == [401] * FRESH_CONNECTIONS
        assert_problem(kept.get("/v1/jobs"), 401, "revoked")
        assert_problem(kept.get(f"/v1/jobs/{'0' * 32}"), 401, "revoked")


def test_a_key_revoked_by_the_cli_is_refused_at_once_by_every_api_process(two_process_api, keyed_env):
    import subprocess

    url = two_process_api
    _tenant, key = make_tenant("cached-cli")
    assert fresh_statuses(url, key) == [200] * FRESH_CONNECTIONS
    revoked = subprocess.run(kerasd_command("admin", "revoke-key", key[:11]), env=keyed_env, capture_output=True,
                             text=True, timeout=120)
    assert revoked.returncode == 0, revoked.stderr
    assert fresh_statuses(url, key) == [401] * FRESH_CONNECTIONS


def test_an_unknown_key_with_a_known_prefix_is_refused(two_process_api):
    _tenant, key = make_tenant("cached-forged")
    assert fresh_statuses(two_process_api, key)[:1] == [200]
    forged = key[:12] + ("A" if key[12] != "A" else "B") + key[13:]
    with httpx.Client(base_url=two_process_api, headers={"Authorization": f"Bearer {forged}"}, timeout=60) as c:
        assert_problem(c.get("/v1/jobs"), 401, "not valid")
