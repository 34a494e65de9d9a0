"""Schemathesis against the served OpenAPI document, with all its checks (issue 9): no 5xx, every answer's
status, content type, headers and body as the document says, invalid input refused, auth not ignored.

It runs against the keys-required API (tests/conftest.py `keyed_api`) with an admin key, so the admin routes
and /metrics are reached too. Examples per operation are few, to keep CI fast.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.tenancy import make_tenant

# Few, for CI; KERASD_FUZZ_EXAMPLES=200 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("KERASD_FUZZ_EXAMPLES", "12"))

CONFIG = schemathesis.Config.from_dict({
    # The admin key goes on every request (below); no Authorization or X-API-Key of schemathesis's own, which the
    # key would overwrite. Requests without a key are still sent, by the ignored_auth check.
    "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "with-security-parameters": False},
    "checks": {
        # A request can be valid by the schema and still be refused by what the schema cannot say: a layer
        # Keras cannot build, arrays of a dataset that does not exist. Those answers are 422 (409 or 413 for a
        # state or a quota): documented problem documents, never a 5xx.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "413", "422", "429"]},
    },
})


def app_schema() -> dict:
    from app.main import create_app

    return create_app().openapi()


# The document the API serves, made by the same code; test_the_served_document_is_the_one_fuzzed checks that
# they are equal. (Loaded here rather than from the live server: schemathesis's lazy fixture loader does
# not work with this pytest.)
schema = schemathesis.openapi.from_dict(app_schema(), config=CONFIG)


@pytest.fixture(scope="module")
def target(keyed_api) -> dict:
    # An admin of a tenant of its own, with no request-rate limit: the fuzzer sends requests back to back.
    _tenant, key = make_tenant("fuzz", role="admin", requests_per_s=0)
    return {"base_url": keyed_api[0], "headers": {"Authorization": f"Bearer {key}"}}


def test_the_served_document_is_the_one_fuzzed(keyed_api):
    import httpx

    assert httpx.get(f"{keyed_api[0]}/openapi.json").json() == app_schema()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=MAX_EXAMPLES)
def test_the_api_keeps_its_openapi_contract(case, target):
    case.call_and_validate(base_url=target["base_url"], headers=target["headers"])
