"""Tenants (issue 9): isolation on every route family, keys, quotas, fair turns, metrics and logs.

Against a real API that requires keys (tests/conftest.py `keyed_api`) with its own worker, on the session's
PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime

import numpy as np
import pytest

from tests.holds import running_until_cancelled, wait_until
from tests.seed import SEED_MODEL, fit_request, npy_bytes, npz_bytes, seed_arrays, submit, upload, wait_for_job
from tests.services import kerasd_command
from tests.tenancy import keyed_client, make_tenant
from tests.test_bad_input import assert_problem

MISSING = "f" * 32


@pytest.fixture(scope="module")
def url(keyed_api) -> str:
    return keyed_api[0]


@pytest.fixture(scope="module")
def tenant_a(url):
    """Tenant A with one of everything: a model, a dataset, uploaded weights and a finished fit job."""
    _tenant_id, key = make_tenant("a")
    with keyed_client(url, key) as client:
        dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()
        model = client.post("/v1/models", json=SEED_MODEL).json()
        job = client.post("/v1/jobs", json=fit_request(model["id"], dataset["id"], epochs=1)).json()
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
        weights_bytes = client.get(f"/v1/jobs/{job['id']}/artifacts/weights.h5").content
        weights = client.post("/v1/weights", files={"file": ("a.weights.h5", weights_bytes)}).json()
    return {"key": key, "dataset": dataset, "model": model, "job": job, "weights": weights}


def same_shape(foreign, missing, foreign_id: str) -> None:
    """A foreign resource's 404 is a missing one's, but for the id it names."""
    assert foreign.status_code == missing.status_code == 404, (foreign.text, missing.text)
    assert foreign.headers["content-type"] == missing.headers["content-type"]
    assert json.loads(foreign.text.replace(foreign_id, MISSING)) == missing.json()


def test_a_request_without_a_key_is_401_before_its_body_is_read(url):
    import httpx

    with httpx.Client(base_url=url, timeout=60) as anonymous:
        response = anonymous.get("/v1/models")
        assert_problem(response, 401, "Authorization: Bearer")
        assert response.headers["www-authenticate"].startswith("Bearer")
        # An upload is refused before it is spooled; health and docs stay open.
        assert_problem(upload(anonymous, "x.npy", npy_bytes(np.zeros((10, 3), "float32"))), 401)
        assert_problem(
            anonymous.get("/v1/jobs", headers={"Authorization": "Bearer kd_00000000_" + "x" * 43}), 401, "not valid"
        )
        assert_problem(anonymous.get("/v1/jobs", headers={"X-API-Key": "nonsense"}), 401)
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200


def test_every_route_family_is_isolated(url, tenant_a):
    a = tenant_a
    _b_id, b_key = make_tenant("b")
    job_id, model_id, dataset_id, weights_id = a["job"]["id"], a["model"]["id"], a["dataset"]["id"], a["weights"]["id"]
    with keyed_client(url, a["key"]) as owner, keyed_client(url, b_key) as other:
        reads = [
            f"/v1/models/{model_id}",
            f"/v1/models/{model_id}/architecture",
            f"/v1/datasets/{dataset_id}",
            f"/v1/datasets/{dataset_id}/content",
            f"/v1/jobs/{job_id}",
            f"/v1/jobs/{job_id}/artifacts",
            f"/v1/jobs/{job_id}/artifacts/weights.h5",
            f"/v1/jobs/{job_id}/events",
            f"/v1/weights/{weights_id}",
        ]
        for path in reads:
            assert owner.get(path).status_code == 200, path
            foreign_id = next(i for i in (model_id, dataset_id, job_id, weights_id) if i in path)
            same_shape(other.get(path), other.get(path.replace(foreign_id, MISSING)), foreign_id)
        for method, path, foreign_id in [
            ("DELETE", f"/v1/models/{model_id}", model_id),
            ("DELETE", f"/v1/datasets/{dataset_id}", dataset_id),
            ("DELETE", f"/v1/jobs/{job_id}", job_id),
            ("POST", f"/v1/jobs/{job_id}/cancel", job_id),
            ("POST", f"/v1/jobs/{job_id}/retry", job_id),
        ]:
            same_shape(
                other.request(method, path), other.request(method, path.replace(foreign_id, MISSING)), foreign_id
            )
        # Nothing of A's was changed by B's tries.
        assert owner.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
        assert owner.get(f"/v1/models/{model_id}").status_code == 200

        # Lists show only one's own, and a content hash finds only one's own upload.
        for family, own_id in (("models", model_id), ("datasets", dataset_id), ("jobs", job_id)):
            assert own_id in [item["id"] for item in owner.get(f"/v1/{family}").json()["items"]]
            listed = other.get(f"/v1/{family}").json()
            assert listed["items"] == [] and listed["total"] == 0, family
        assert other.get("/v1/datasets", params={"sha256": a["dataset"]["sha256"]}).json()["total"] == 0
        assert other.get(f"/v1/jobs?model_id={model_id}").json()["total"] == 0

        # B cannot build on A's rows either: A's model, arrays, weights or job are unknown to B's jobs.
        own_model = other.post("/v1/models", json=SEED_MODEL).json()["id"]
        assert_problem(other.post("/v1/jobs", json=fit_request(model_id, dataset_id, epochs=1)), 404, model_id)
        assert_problem(other.post("/v1/jobs", json=fit_request(own_model, dataset_id, epochs=1)), 422, dataset_id)
        own_data = upload(other, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        for extra in ({"initial_weights": {"weights_id": weights_id}}, {"initial_weights": {"job_id": job_id}}):
            assert_problem(other.post("/v1/jobs", json=fit_request(own_model, own_data, epochs=1) | extra), 422)
        assert_problem(
            other.post(
                "/v1/jobs",
                json={
                    "kind": "predict",
                    "source_job_id": job_id,
                    "predict": {"x": {"dataset_id": own_data, "array": "val_x"}},
                },
            ),
            422,
            job_id,
        )
        # The same bytes uploaded by B are B's own dataset (stored once underneath).
        mine = upload(other, "seed.npz", npz_bytes(**seed_arrays())).json()
        assert mine["sha256"] == a["dataset"]["sha256"] and mine["id"] != dataset_id
        # Plugins are the server's, the same for everyone.
        assert other.get("/v1/plugins").json() == owner.get("/v1/plugins").json()
        assert other.get("/v1/tenant").json()["id"] != owner.get("/v1/tenant").json()["id"]


def test_a_revoked_key_is_401(url, keyed_env):
    _tenant_id, key = make_tenant("revoke")
    prefix = key[:11]
    with keyed_client(url, key) as client:
        assert client.get("/v1/models").status_code == 200
        revoked = subprocess.run(
            kerasd_command("admin", "revoke-key", prefix), env=keyed_env, capture_output=True, text=True, timeout=120
        )
        assert revoked.returncode == 0, revoked.stderr
        assert prefix in revoked.stdout
        assert_problem(client.get("/v1/models"), 401, "revoked")
        assert_problem(client.get("/v1/models", headers={"Authorization": "", "X-API-Key": key}), 401)


def test_keys_made_with_the_cli_work_and_are_stored_as_hashes(url, keyed_env):
    from sqlalchemy import select

    from app.core.database import session_scope
    from app.core.tables import ApiKey

    name = f"cli-{time.time_ns()}"
    made = subprocess.run(
        kerasd_command("admin", "create-tenant", name, "--max-queued-jobs", "7"),
        env=keyed_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    keyed = subprocess.run(
        kerasd_command("admin", "create-key", name, "--json"),
        env=keyed_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    document = json.loads(keyed.stdout)
    key = document["key"]
    assert key.startswith(document["prefix"] + "_")
    with session_scope() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == document["prefix"]))
        assert key not in (row.key_sha256, row.prefix) and len(row.key_sha256) == 64
    with keyed_client(url, key) as client:
        tenant = client.get("/v1/tenant").json()
        assert tenant["name"] == name and tenant["limits"]["queued_jobs"] == 7


def test_over_the_request_rate_is_429_with_retry_after(url):
    # One request in 100 s after a burst of 3: the fourth and fifth are refused however slowly they are sent.
    _tenant_id, key = make_tenant("rate", requests_per_s=0.01, request_burst=3)
    with keyed_client(url, key) as client:
        statuses = [client.get("/v1/models").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429], statuses
        limited = client.get("/v1/models")
        body = assert_problem(limited, 429, "0.01 a second", "bursts of 3")
        retry_after = int(limited.headers["retry-after"])
        # A whole token takes 100 s; what has refilled since the burst was spent shortens the wait.
        assert 50 <= retry_after <= 100 and body["retry_after_s"] == retry_after
    # At 0.5 a second the wait named is at most 2 s, and once it has passed the next request is served.
    _quick, quick_key = make_tenant("rate-quick", requests_per_s=0.5, request_burst=1)
    with keyed_client(url, quick_key) as client:
        limited = wait_until(
            lambda: (got := client.get("/v1/models")).status_code == 429 and got,
            timeout_s=60,
            what="a request past the burst refused",
        )
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 2 and limited.json()["retry_after_s"] == retry_after, limited.text
        time.sleep(retry_after)  # the wait the server named
        assert client.get("/v1/models").status_code == 200
    # Another tenant is not slowed by this one's bucket.
    _other, other_key = make_tenant("rate-other")
    with keyed_client(url, other_key) as other:
        assert other.get("/v1/models").status_code == 200


def test_over_the_stored_bytes_quota_is_413_with_the_quota(url):
    from sqlalchemy import func, select

    from app.core.database import session_scope
    from app.core.tables import Dataset

    _tenant_id, key = make_tenant("bytes", max_stored_bytes=20_000)
    array = npy_bytes(np.zeros((1000, 3), dtype="float32"))  # 12,128 bytes
    with keyed_client(url, key) as client:
        assert upload(client, "first.npy", array).status_code == 201
        with session_scope() as session:
            before = session.scalar(select(func.count()).select_from(Dataset))
        body = assert_problem(upload(client, "second.npy", array), 413, "20,000 bytes", "quota")
        assert body["quota_bytes"] == 20_000 and body["used_bytes"] == len(array)
        with session_scope() as session:
            assert session.scalar(select(func.count()).select_from(Dataset)) == before
        usage = client.get("/v1/tenant").json()
        assert usage["usage"]["stored_bytes"] == len(array) and usage["limits"]["stored_bytes"] == 20_000


def test_over_the_queued_jobs_quota_is_409(url):
    _tenant_id, key = make_tenant("queued", max_queued_jobs=2)
    with keyed_client(url, key) as client:
        dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        model = client.post("/v1/models", json=SEED_MODEL).json()["id"]
        # No worker serves the one-GPU queue here, so these stay queued.
        waiting = fit_request(model, dataset, epochs=1) | {"resources": {"gpus": 1}}
        ids = [client.post("/v1/jobs", json=waiting).json()["id"] for _ in range(2)]
        assert_problem(client.post("/v1/jobs", json=waiting), 409, "quota of queued jobs is 2")
        for job_id in ids:
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
        last = client.post("/v1/jobs", json=waiting)
        assert last.status_code == 201
        assert client.post(f"/v1/jobs/{last.json()['id']}/cancel").status_code == 202


def test_one_tenants_many_jobs_do_not_starve_anothers_one(url):
    """One worker; A queues six jobs, then B one: B's runs next, not after A's six."""
    _a, a_key = make_tenant("busy")
    _b, b_key = make_tenant("quiet")
    with keyed_client(url, a_key) as a, keyed_client(url, b_key) as b:
        data = upload(a, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        model = a.post("/v1/models", json=SEED_MODEL).json()["id"]
        # A's first job keeps the worker until it is cancelled, so every other job is queued when B's arrives,
        # however fast this machine trains.
        a_ids = [running_until_cancelled(a, model, data)]
        a_ids += [submit(a, fit_request(model, data, epochs=2, batch_size=20)) for _ in range(5)]
        b_data = upload(b, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        b_model = b.post("/v1/models", json=SEED_MODEL).json()["id"]
        b_job = submit(b, fit_request(b_model, b_data, epochs=2, batch_size=20))
        assert [a.get(f"/v1/jobs/{i}").json()["status"] for i in a_ids] == ["running"] + ["queued"] * 5
        assert a.post(f"/v1/jobs/{a_ids[0]}/cancel").status_code == 202
        b_done = wait_for_job(b, b_job)
        a_done = [wait_for_job(a, i) for i in a_ids]
    assert b_done["status"] == "succeeded" and a_done[0]["status"] == "cancelled"
    assert all(j["status"] == "succeeded" for j in a_done[1:])
    started = {"B": b_done["started_at"], **{f"A{n}": j["started_at"] for n, j in enumerate(a_done)}}
    order = [who[0] for who in sorted(started, key=lambda who: datetime.fromisoformat(started[who]))]
    # B's job starts as soon as the job running when it arrived ends: none of A's five waiting start before it.
    assert order == ["A", "B", "A", "A", "A", "A", "A"], started


def test_admin_keys_manage_tenants_and_keys_over_http(url):
    _admin_tenant, admin_key = make_tenant("ops", role="admin")
    _user_tenant, user_key = make_tenant("user")
    with keyed_client(url, admin_key) as admin, keyed_client(url, user_key) as user:
        assert_problem(user.get("/v1/admin/tenants"), 403, "admin key")
        name = f"http-{time.time_ns()}"
        tenant = admin.post("/v1/admin/tenants", json={"name": name, "max_running_jobs": 3})
        assert tenant.status_code == 201, tenant.text
        tenant = tenant.json()
        assert tenant["limits"]["running_jobs"] == 3 and tenant["quotas"]["max_queued_jobs"] is None
        assert_problem(admin.post("/v1/admin/tenants", json={"name": name}), 409, name)
        # One tenant, by id or by name; a user key may not read it, and an unknown one is a 404.
        assert admin.get(f"/v1/admin/tenants/{tenant['id']}").json() == tenant
        assert admin.get(f"/v1/admin/tenants/{name}").json() == tenant
        assert_problem(user.get(f"/v1/admin/tenants/{tenant['id']}"), 403, "admin key")
        assert_problem(admin.get(f"/v1/admin/tenants/{MISSING}"), 404, MISSING)
        made = admin.post(f"/v1/admin/tenants/{tenant['id']}/keys", json={"name": "ci"}).json()
        assert made["key"].startswith(made["prefix"])
        listed = admin.get(f"/v1/admin/tenants/{name}/keys").json()
        assert [k["prefix"] for k in listed] == [made["prefix"]] and "key" not in listed[0]
        patched = admin.patch(
            f"/v1/admin/tenants/{tenant['id']}", json={"max_running_jobs": None, "requests_per_s": 100}
        ).json()
        assert patched["quotas"]["max_running_jobs"] is None and patched["limits"]["requests_per_s"] == 100
        with keyed_client(url, made["key"]) as new:
            assert new.get("/v1/jobs").status_code == 200
            assert admin.delete(f"/v1/admin/keys/{made['id']}").status_code == 204
            assert_problem(new.get("/v1/jobs"), 401)


def metric_samples(text: str, name: str) -> dict[str, float]:
    """`{labels: value}` of one metric's samples in a Prometheus text exposition ('' where it has no labels)."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def test_metrics_are_for_admins_and_count_the_fleet(url, tenant_a, keyed_env):
    _t, admin_key = make_tenant("metrics", role="admin")
    import httpx

    assert_problem(httpx.get(f"{url}/metrics"), 401)
    with keyed_client(url, tenant_a["key"]) as user:
        assert_problem(user.get("/metrics"), 403)
    with keyed_client(url, admin_key) as admin:
        before = admin.get("/metrics").text
        # Durations are read from SQL a few seconds behind: a job run now is counted on a later scrape. Its
        # second and third epochs are timed (an attempt's first, which builds the model, is not).
        data = upload(admin, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        model = admin.post("/v1/models", json=SEED_MODEL).json()["id"]
        assert (
            wait_for_job(admin, admin.post("/v1/jobs", json=fit_request(model, data, epochs=3)).json()["id"])["status"]
            == "succeeded"
        )
        # No worker serves the one-GPU queue here, so this one stays queued.
        waiting = admin.post("/v1/jobs", json=fit_request(model, data, epochs=1) | {"resources": {"gpus": 1}})
        epochs_before = metric_samples(before, "kerasd_epoch_duration_seconds_count")[""]
        jobs_before = sum(metric_samples(before, "kerasd_job_duration_seconds_count").values())

        def counted():
            response = admin.get("/metrics")
            epochs = metric_samples(response.text, "kerasd_epoch_duration_seconds_count")[""]
            jobs = sum(metric_samples(response.text, "kerasd_job_duration_seconds_count").values())
            return response if epochs >= epochs_before + 2 and jobs >= jobs_before + 1 else None

        response = wait_until(counted, timeout_s=120, what="the job's epochs counted in /metrics")
        assert admin.post(f"/v1/jobs/{waiting.json()['id']}/cancel").status_code == 202
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric_samples(text, "kerasd_jobs")['status="succeeded"'] >= 2
    assert metric_samples(text, "kerasd_queue_depth")[f'queue="{keyed_env["KERASD_QUEUE"]}.gpu"'] >= 1
    assert 'route="/v1/jobs/{job_id}"' in text and "kerasd_http_request_duration_seconds_bucket" in text
    assert 'kerasd_upload_bytes_total{kind="dataset"}' in text


def json_lines(text: str) -> list[dict]:
    """The log's JSON lines; TensorFlow's own C++ logging shares the stream and can split one now and then."""
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return [line for line in found if isinstance(line, dict)]


def test_logs_are_json_lines_with_request_and_job_ids(url, tenant_a, keyed_api, keyed_worker):
    with keyed_client(url, tenant_a["key"]) as client:
        response = client.get(f"/v1/jobs/{tenant_a['job']['id']}", headers={"X-Request-ID": "trace-me-42"})
    assert response.headers["x-request-id"] == "trace-me-42"
    # The access line is written once the response has gone out.
    access = wait_until(
        lambda: [line for line in json_lines(keyed_api[1].log_text()) if line.get("request_id") == "trace-me-42"],
        timeout_s=60,
        what="the access line",
    )
    assert access[-1]["route"] == "/v1/jobs/{job_id}" and access[-1]["status"] == 200
    assert access[-1]["tenant_id"] and "api_key" not in json.dumps(access)
    worker_lines = json_lines(keyed_worker.log_text())
    assert any(line.get("job_id") == tenant_a["job"]["id"] for line in worker_lines)


def test_request_limits_are_problems(url, tenant_a):
    with keyed_client(url, tenant_a["key"]) as client:
        deep = {"type": "sequential", "layers": [{"class_name": "Dense", "units": 1}], "name": "x"}
        nested: dict = {}
        cursor = nested
        for _ in range(100):
            cursor["a"] = {}
            cursor = cursor["a"]
        body = assert_problem(client.post("/v1/models", json=deep | {"extra": nested}), 422, "KERASD_MAX_JSON_DEPTH")
        assert "nested" in body["detail"]
        bomb = b"[" * 200_000 + b"]" * 200_000
        assert_problem(
            client.post("/v1/jobs", content=bomb, headers={"content-type": "application/json"}), 422, "nested"
        )
        assert_problem(
            client.post("/v1/jobs", json={"kind": "fit", "x": list(range(200_000))}), 422, "KERASD_MAX_JSON_ITEMS"
        )
        assert_problem(client.post("/v1/models", json=SEED_MODEL | {"name": "a\u0000b"}), 422, "NUL")
        assert_problem(client.post("/v1/jobs", json={"kind": "x" * 2_000_000}), 422, "KERASD_MAX_JSON_STRING_CHARS")
        big = client.post("/v1/jobs", content=b" " * (17 * 1024 * 1024), headers={"content-type": "application/json"})
        assert_problem(big, 413, "KERASD_MAX_REQUEST_BYTES")
        assert_problem(client.get("/v1/jobs", params={"limit": 10_000}), 422, "limit")
        assert_problem(client.get("/v1/models", params={"offset": 10**30}), 422, "offset")
        assert_problem(client.get("/v1/jobs?" + "a=b&" * 3000), 414)


def test_events_route_takes_the_key_as_a_query_parameter_for_eventsource(url, tenant_a):
    import httpx

    job_id = tenant_a["job"]["id"]
    with httpx.Client(base_url=url, timeout=60) as browser:
        with browser.stream("GET", f"/v1/jobs/{job_id}/events", params={"api_key": tenant_a["key"]}) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert json.loads(lines[-1][6:])["type"] == "finished"
        # Only there: elsewhere a key in the URL is no key.
        assert_problem(browser.get("/v1/jobs", params={"api_key": tenant_a["key"]}), 401)
