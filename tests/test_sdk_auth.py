"""The SDK and the CLI against an API that requires keys (tests/conftest.py `keyed_api`): a key given as
`api_key=`, `--api-key` or KERASD_API_KEY acts as its tenant; a missing or wrong key is the SDK's
AuthenticationError (the CLI's exit status 1); over the tenant's request rate is RateLimited."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

import kerasd
from tests.seed import SEED_MODEL
from tests.services import kerasd_command
from tests.tenancy import keyed_client, make_tenant

UNKNOWN_KEY = "kd_deadbeef_" + "x" * 43


@pytest.fixture(scope="module")
def url(keyed_api) -> str:
    return keyed_api[0]


@pytest.fixture()
def no_key_env(monkeypatch) -> None:
    """Nothing from the environment the SDK would pick up on its own."""
    monkeypatch.delenv("KERASD_API_KEY", raising=False)
    monkeypatch.delenv("KERASD_URL", raising=False)


def owner_of(url: str, model_id: str, *keys: str) -> list[int]:
    """The status GET /v1/models/{id} answers with each key: 200 for its tenant's model, 404 for another's."""
    statuses = []
    for key in keys:
        with keyed_client(url, key) as client:
            statuses.append(client.get(f"/v1/models/{model_id}").status_code)
    return statuses


def test_api_key_argument_acts_as_the_keys_tenant(url, no_key_env) -> None:
    _tenant, key = make_tenant("sdk-arg")
    _other, other_key = make_tenant("sdk-arg-other")
    with kerasd.Client(url, api_key=key, verbose=0) as client:
        model = client.models.create({**SEED_MODEL, "name": "sdk_key_argument"})
        assert model["id"] in {m["id"] for m in client.models.list(limit=500)}
    assert owner_of(url, model["id"], key, other_key) == [200, 404]

    async def listed_by_async_client() -> set[str]:
        async with kerasd.AsyncClient(url, api_key=key, verbose=0) as client:
            return {m["id"] for m in await client.models.list(limit=500)}

    assert model["id"] in asyncio.run(listed_by_async_client())


def test_api_key_from_the_environment(url, monkeypatch, no_key_env) -> None:
    _tenant, key = make_tenant("sdk-env")
    _other, other_key = make_tenant("sdk-env-other")
    monkeypatch.setenv("KERASD_API_KEY", key)
    with kerasd.Client(url, verbose=0) as client:
        assert client.api_key == key
        model = client.models.create({**SEED_MODEL, "name": "sdk_key_env"})
    assert owner_of(url, model["id"], key, other_key) == [200, 404]
    # An explicit api_key= wins over the environment's.
    with kerasd.Client(url, api_key=other_key, verbose=0) as client:
        assert model["id"] not in {m["id"] for m in client.models.list(limit=500)}


def test_a_missing_or_wrong_key_is_an_authentication_error(url, monkeypatch, no_key_env) -> None:
    with kerasd.Client(url, verbose=0) as anonymous:
        with pytest.raises(kerasd.AuthenticationError) as missing:
            anonymous.models.list()
    assert missing.value.status_code == 401 and "needs a key" in missing.value.detail

    for wrong in (UNKNOWN_KEY, "nonsense"):
        with kerasd.Client(url, api_key=wrong, verbose=0) as client:
            with pytest.raises(kerasd.AuthenticationError) as refused:
                client.models.create(SEED_MODEL)
        assert refused.value.status_code == 401 and "not valid" in refused.value.detail

    monkeypatch.setenv("KERASD_API_KEY", UNKNOWN_KEY)
    with kerasd.Client(url, verbose=0) as client:
        with pytest.raises(kerasd.AuthenticationError):
            client.jobs.list()


def test_over_the_request_rate_is_rate_limited(url, no_key_env) -> None:
    # One request in 100 s after a burst of 2: the third is refused however slowly it is sent.
    _tenant, key = make_tenant("sdk-rate", requests_per_s=0.01, request_burst=2)
    # No retries: the third request is refused.
    with kerasd.Client(url, api_key=key, verbose=0, max_retries=0) as client:
        client.models.list()
        client.models.list()
        with pytest.raises(kerasd.RateLimited) as limited:
            client.models.list()
    assert limited.value.status_code == 429
    assert limited.value.retry_after is not None and 50 <= limited.value.retry_after <= 100
    assert "0.01 a second" in limited.value.detail
    # A POST is never retried, whatever max_retries says: still RateLimited with the default client.
    with kerasd.Client(url, api_key=key, verbose=0) as client:
        with pytest.raises(kerasd.RateLimited):
            client.models.create(SEED_MODEL)


# --- the command line ----------------------------------------------------------------------------

def cli(url: str, *args: str, key_env: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KERASD_API_KEY", "KERASD_URL")}
    if key_env is not None:
        env["KERASD_API_KEY"] = key_env
    return subprocess.run([*kerasd_command(*args), "--url", url], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_cli_api_key_option_and_environment(url, tmp_path) -> None:
    _tenant, key = make_tenant("cli-key")
    _other, other_key = make_tenant("cli-key-other")
    (tmp_path / "model.json").write_text(json.dumps(SEED_MODEL))

    with_option = cli(url, "models", "create", "model.json", "--api-key", key, "--json", cwd=tmp_path)
    assert with_option.returncode == 0, with_option.stderr
    by_option = json.loads(with_option.stdout)["id"]
    assert owner_of(url, by_option, key, other_key) == [200, 404]

    from_env = cli(url, "models", "create", "model.json", "--json", key_env=key, cwd=tmp_path)
    assert from_env.returncode == 0, from_env.stderr
    by_env = json.loads(from_env.stdout)["id"]
    assert owner_of(url, by_env, key, other_key) == [200, 404]

    # --api-key wins over the environment's key.
    both = cli(url, "jobs", "list", "--api-key", key, "--json", key_env=UNKNOWN_KEY)
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["total"] == 0


def test_cli_without_or_with_a_wrong_key_exits_1_with_the_servers_reason(url) -> None:
    missing = cli(url, "jobs", "list")
    assert missing.returncode == 1 and "401 Unauthorized" in missing.stderr and "needs a key" in missing.stderr
    for wrong in (cli(url, "jobs", "list", "--api-key", UNKNOWN_KEY), cli(url, "jobs", "list", key_env=UNKNOWN_KEY)):
        assert wrong.returncode == 1 and "401 Unauthorized" in wrong.stderr and "not valid" in wrong.stderr
        assert "Traceback" not in wrong.stderr
