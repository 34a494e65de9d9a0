"""Redis and PostgreSQL restarted under a running job: nothing is lost, every request answered meanwhile is a 503
with Retry-After (a key being checked too), and everyone recovers."""

from __future__ import annotations

import json
import os
import uuid

import httpx
import pytest

from tests.holds import paused, step_until, wait_until
from tests.outage_services import PrivatePostgres, PrivateRedis
from tests.seed import SEED_MODEL, fit_request, read_events, wait_for_job
from tests.test_fault_tolerance import Stack, seed_ids, wait_for


@pytest.fixture()
def private_stack(tmp_path, logs_dir):
    from app.core.migrate import upgrade_to_head

    postgres = PrivatePostgres()
    redis_server = PrivateRedis(tmp_path)
    upgrade_to_head(postgres.url)
    env = {
        **os.environ,
        "KERASD_DATABASE_URL": postgres.url,
        "KERASD_REDIS_URL": redis_server.url,
        "KERASD_QUEUE": f"kerasd-outage-{uuid.uuid4().hex[:8]}",
        "KERASD_DATA_DIR": str(tmp_path / "data"),
        "KERASD_LEASE_SECONDS": "30",
        "KERASD_REAPER_INTERVAL_S": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    stack = Stack(env, logs_dir)
    try:
        yield stack, postgres, redis_server
    finally:
        stack.stop()
        redis_server.stop()
        postgres.remove()


def key_in(database_url: str) -> str:
    """An API key of a new tenant, made directly in this database (as `kerasd admin create-key` does)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.tenants import service as tenants

    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            tenant = tenants.create_tenant(session, name=f"outage-{uuid.uuid4().hex[:8]}")
            _row, key = tenants.create_key(session, tenant=tenant, name="tests", role="user")
            session.commit()
            return key
    finally:
        engine.dispose()


def assert_unavailable(answer: httpx.Response) -> None:
    """A 503 the client can act on: a problem document naming the database, Retry-After, no trace."""
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    assert int(answer.headers["retry-after"]) >= 1 and "database" in answer.json()["detail"], answer.text
    assert "Traceback" not in answer.text


def start_long_fit(client: httpx.Client) -> str:
    """The id of a 12-epoch fit that has finished two epochs."""
    ids = seed_ids(client)
    # The tests need it still training when the service comes back: they hold its worker to make sure of that.
    # Untuned, 100 batches an epoch: an epoch spans many of the slices the worker is let run in.
    fit = {**fit_request(ids["model"], ids["dataset"], epochs=12, batch_size=10, shuffle=False), "tuning": False}
    job_id = client.post("/v1/jobs", json=fit).json()["id"]
    wait_for(lambda: len(client.get(f"/v1/jobs/{job_id}").json()["epochs"]) >= 2)
    return job_id


def test_redis_restart_during_a_job(private_stack):
    stack, _postgres, redis_server = private_stack
    worker = stack.worker()
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        job_id = start_long_fit(client)
        # A subscriber that saw the start, then lost its connection when Redis went away.
        seen: list[dict] = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if sum(e["type"] == "epoch" for e in seen) >= 2:
                    break
        # The worker runs in short slices while Redis is away, until an epoch has ended meanwhile, and is stopped
        # again when Redis comes back: however fast it trains, it is still training then.
        with paused(worker.popen.pid) as run_for:
            before = len(client.get(f"/v1/jobs/{job_id}").json()["epochs"])
            redis_server.stop()
            step_until(run_for, lambda: len(client.get(f"/v1/jobs/{job_id}").json()["epochs"]) > before,
                       what="an epoch ended while Redis is away")
            redis_server.start()
            during = client.get(f"/v1/jobs/{job_id}").json()
            assert during["status"] == "running" and len(during["epochs"]) < 12, during
        job = wait_for_job(client, job_id, timeout_s=240)
        assert job["status"] == "succeeded", job["error"]
        assert [e["epoch"] for e in job["epochs"]] == list(range(12))
        rest = read_events(client, job_id, last_event_id=seen[-1]["id"])
        ids_seen = [e["id"] for e in seen] + [e["id"] for e in rest]
        assert len(ids_seen) == len(set(ids_seen)), "an event arrived twice"
        assert rest[-1]["type"] == "finished"
        # Epochs that ended while Redis was away were held by the worker and sent when it came back.
        assert [e["data"]["epoch"] for e in seen + rest if e["type"] == "epoch"] == list(range(12))


def test_postgres_restart_answers_503_then_recovers(private_stack):
    stack, postgres, _redis_server = private_stack
    worker = stack.worker()
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        job_id = start_long_fit(client)
        # A key this API has not seen yet: checked in SQL before the route, and before any body byte is read.
        key = {"Authorization": f"Bearer {key_in(postgres.url)}"}
        # The worker is stopped before the database goes, so the job is still training when it goes however fast
        # the machine trains, then runs in short slices until a write of the job's finds the database away.
        with paused(worker.popen.pid) as run_for:
            before = client.get(f"/v1/jobs/{job_id}").json()
            assert before["status"] == "running" and len(before["epochs"]) < 12, before
            postgres.stop()
            try:
                assert_unavailable(client.get(f"/v1/jobs/{job_id}"))
                assert_unavailable(client.get("/v1/jobs", headers=key))
                assert_unavailable(client.post("/v1/models", json=SEED_MODEL, headers=key))
                step_until(run_for, lambda: "database unavailable during" in worker.log_text(),
                           what="the worker retrying a write while the database is away")
            finally:
                postgres.start()
        job = wait_for_job(client, job_id, timeout_s=240)
        assert job["status"] == "succeeded", job["error"]
        assert [e["epoch"] for e in job["epochs"]] == list(range(12))
        assert client.get("/v1/jobs").status_code == 200
        # Once the database is back the same key is accepted: its 503s did not count as failed authentications.
        assert client.get("/v1/jobs", headers=key).json()["total"] == 0


def test_ready_is_503_naming_what_is_away_sql_redis_or_every_worker(private_stack):
    stack, postgres, redis_server = private_stack
    with httpx.Client(base_url=stack.url, timeout=60) as client:

        def readiness() -> tuple[int, dict]:
            response = client.get("/ready")
            assert response.headers["content-type"].startswith("application/json"), response.text
            return response.status_code, response.json()

        status, body = readiness()
        assert status == 503 and body["status"] == "not ready", body
        assert body["checks"] == {"sql": "ok", "redis": "ok", "workers": "none alive: start one with `kerasd worker`"}
        worker = stack.worker()
        status, body = wait_until(lambda: (found := readiness())[0] == 200 and found, what="ready with a worker")
        assert body == {"status": "ready", "checks": {"sql": "ok", "redis": "ok", "workers": "1 alive"}}

        redis_server.stop()
        try:
            status, body = readiness()
            assert status == 503 and body["status"] == "not ready", body
            assert body["checks"]["sql"] == "ok" and body["checks"]["redis"].startswith("unavailable: "), body
        finally:
            redis_server.start()
        wait_until(lambda: readiness()[0] == 200, what="ready again once Redis is back")

        postgres.stop()
        try:
            status, body = readiness()
            assert status == 503 and body["status"] == "not ready", body
            assert body["checks"]["sql"].startswith("unavailable: ") and body["checks"]["redis"] == "ok", body
        finally:
            postgres.start()
        wait_until(lambda: readiness()[0] == 200, what="ready again once PostgreSQL is back")

        worker.stop()  # a worker that stops withdraws its announcement
        status, body = wait_until(lambda: (found := readiness())[0] == 503 and found, what="no worker left")
        assert body["checks"] == {"sql": "ok", "redis": "ok", "workers": "none alive: start one with `kerasd worker`"}
