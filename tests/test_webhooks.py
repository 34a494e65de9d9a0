"""Webhooks on real processes: jobs trained by a real worker, deliveries POSTed by its sender to a real HTTP server
on 127.0.0.1 in this process, signatures checked as a receiver checks them (with the snippet docs/api.md shows)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, upload, wait_for_job
from tests.tenancy import keyed_client, make_tenant
from tests.test_bad_input import assert_problem

MISSING = "0" * 32


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with the next of `statuses` (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "answered": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kerasd"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def about(self, job_id: str) -> list[dict[str, Any]]:
        """The requests whose body is about this job (other tests' jobs may end meanwhile)."""
        with self.lock:
            return [r for r in self.requests if json.loads(r["body"])["job"]["id"] == job_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*statuses: int) -> Receiver:
        made.append(Receiver(*statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture()
def hooks(client: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    """Makes hooks on the default tenant, deleted afterwards so that no other test's jobs reach them."""
    made: list[str] = []

    def make(url: str, **fields: Any) -> dict[str, Any]:
        response = client.post("/v1/webhooks", json={"url": url, **fields})
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
        return response.json()

    yield make
    for hook_id in made:
        client.delete(f"/v1/webhooks/{hook_id}")


def docs_verify() -> Callable[[str, bytes, str], bool]:
    """The `verify` function of docs/api.md's signature example, as a receiver would copy it."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(import hashlib.*?def verify.*?)```", text, re.S)
    assert code, "docs/api.md shows how to verify a signature in Python"
    assert len(code.group(1).strip().splitlines()) <= 6
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]


def wait_until(check: Callable[[], Any], timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def deliveries(client: httpx.Client, hook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{hook_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def settled(client: httpx.Client, hook_id: str, job_id: str) -> list[dict[str, Any]]:
    """The hook's deliveries about the job once none is pending, else []."""
    about = [d for d in deliveries(client, hook_id) if d["subject_id"] == job_id]
    return about if about and all(d["status"] != "pending" for d in about) else []


@pytest.fixture(scope="module")
def seed(api_url: str) -> dict[str, str]:
    with httpx.Client(base_url=api_url, timeout=120) as http:
        dataset = upload(http, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        model = http.post("/v1/models", json=SEED_MODEL).json()["id"]
    return {"model": model, "dataset": dataset}


def finished_job(client: httpx.Client, seed: dict[str, str], **fit: Any) -> dict[str, Any]:
    created = client.post("/v1/jobs", json=fit_request(seed["model"], seed["dataset"], epochs=1, **fit))
    assert created.status_code == 201, created.text
    return wait_for_job(client, created.json()["id"])


def test_a_finished_job_is_delivered_once_signed_to_the_hooks_that_take_its_event(client, seed, receivers, hooks):
    verify = docs_verify()
    finished, failed_only = receivers(), receivers()
    hook = hooks(finished.url, events=["job.finished"], description="CI")
    other = hooks(failed_only.url, events=["job.failed"])
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["job.finished"]
    # The secret is shown once: never in a read.
    assert "secret" not in client.get(f"/v1/webhooks/{hook['id']}").json()
    assert all("secret" not in listed for listed in client.get("/v1/webhooks").json())

    job = finished_job(client, seed)
    assert job["status"] == "succeeded", job["error"]
    [delivery] = wait_until(lambda: settled(client, hook["id"], job["id"]), what="the delivery is recorded")
    assert delivery["status"] == "delivered" and delivery["attempt_count"] == 1
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    [request] = finished.about(job["id"])
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/kerasd" and headers["Content-Type"] == "application/json"
    assert headers["X-Kerasd-Event"] == "job.finished" and headers["X-Kerasd-Delivery"] == delivery["id"]
    assert verify(hook["secret"], body, headers["X-Kerasd-Signature"])
    expected = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Kerasd-Signature"] == expected
    assert not verify(hook["secret"], body + b" ", headers["X-Kerasd-Signature"])
    assert not verify(other["secret"], body, headers["X-Kerasd-Signature"])
    document = json.loads(body)
    assert document["id"] == delivery["id"] and document["event"] == "job.finished" and document["created_at"]
    assert document == delivery["body"]
    sent_job = document["job"]
    assert sent_job["id"] == job["id"] and sent_job["status"] == "succeeded" and sent_job["kind"] == "fit"
    assert sent_job["model_id"] == seed["model"] and sent_job["finished_at"]
    # The run as the API shows it: its name, tags and metric summaries (final, best, best epoch, goal).
    for field, empty in (("name", None), ("tags", []), ("metrics", {})):
        assert sent_job[field] == job.get(field, empty), field
    assert sent_job["links"]["self"] == f"/v1/jobs/{job['id']}"
    assert client.get(sent_job["links"]["artifacts"]).status_code == 200

    # Once: a sender's later rounds find nothing due (three more polls), and the hook for failures got nothing.
    time.sleep(1.5)
    assert len(finished.about(job["id"])) == 1
    assert failed_only.about(job["id"]) == [] and deliveries(client, other["id"]) == []


def test_5xx_is_retried_until_delivered_a_4xx_is_not_and_the_last_attempt_gives_up(client, seed, receivers, hooks,
                                                                                    server_env):
    flaky, gone, down = receivers(500), receivers(404), receivers(*[503] * 50)
    retried, refused, exhausted = hooks(flaky.url), hooks(gone.url), hooks(down.url)
    job = finished_job(client, seed)
    assert job["status"] == "succeeded", job["error"]

    [delivery] = wait_until(lambda: settled(client, retried["id"], job["id"]), what="retried, then delivered")
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert "500" in delivery["attempts"][0]["error"] and delivery["attempts"][1]["error"] is None
    first, second = flaky.about(job["id"])
    # The same delivery: the same id, body and signature, so a receiver can drop what it has seen.
    for header in ("X-Kerasd-Delivery", "X-Kerasd-Signature", "X-Kerasd-Event"):
        assert first["headers"][header] == second["headers"][header]
    assert first["body"] == second["body"]
    assert [first["headers"]["X-Kerasd-Attempt"], second["headers"]["X-Kerasd-Attempt"]] == ["1", "2"]

    [not_found] = wait_until(lambda: settled(client, refused["id"], job["id"]), what="a 404 fails the delivery")
    assert not_found["status"] == "failed" and [a["status_code"] for a in not_found["attempts"]] == [404]
    assert len(gone.about(job["id"])) == 1

    max_attempts = 6  # the default of KERASD_WEBHOOK_MAX_ATTEMPTS, which the tests do not change
    assert "KERASD_WEBHOOK_MAX_ATTEMPTS" not in server_env
    [given_up] = wait_until(lambda: settled(client, exhausted["id"], job["id"]), timeout_s=120,
                            what="every attempt answered 503")
    assert given_up["status"] == "failed" and given_up["finished_at"]
    assert [a["status_code"] for a in given_up["attempts"]] == [503] * max_attempts
    assert len(down.about(job["id"])) == max_attempts
    # Each wait longer than the one before it, on the whole (exponential backoff with jitter).
    times = [datetime.fromisoformat(a["at"]) for a in given_up["attempts"]]
    # KERASD_WEBHOOK_BACKOFF_S=0.2 doubling, at most KERASD_WEBHOOK_BACKOFF_MAX_S=1: at least 0.2+0.4+0.8+1+1 s.
    assert (times[-1] - times[0]).total_seconds() >= 3.4
    assert client.get(f"/v1/webhooks/{exhausted['id']}/deliveries?limit=1").json()["items"] == [given_up]


def test_webhook_urls_and_events_are_checked(client):
    checks = [({"url": "ftp://example.com/x"}, "http"),
              ({"url": "http://user:pw@127.0.0.1/x"}, "password"),
              ({"url": "http://no-such-host.invalid/x"}, "does not resolve"),
              ({"url": "http://127.0.0.1:1/x", "events": ["job.started"]}, "job.finished"),
              ({"url": "http://127.0.0.1:1/x", "events": []}, ""),
              ({"url": "http://127.0.0.1:1/x", "secret": "mine"}, "")]
    for body, needle in checks:
        assert_problem(client.post("/v1/webhooks", json=body), 422, *([needle] if needle else []))
    assert_problem(client.get(f"/v1/webhooks/{MISSING}"), 404, MISSING)
    assert_problem(client.delete("/v1/webhooks/not-an-id"), 404)
    assert_problem(client.get(f"/v1/webhooks/{MISSING}/deliveries"), 404)


def test_private_addresses_are_refused_unless_allowed():
    from app.core.webhooks import RefusedDestination, resolve

    private = ["http://127.0.0.1/x", "http://localhost:8000/x", "http://10.1.2.3/x", "http://192.168.0.1/x",
               "https://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
               "http://0.0.0.0/x", "http://100.64.0.1/x", "http://[fd00::1]/x"]
    for url in private:
        with pytest.raises(RefusedDestination, match="not a public address"):
            resolve(url, allow_private=False)
        assert resolve(url, allow_private=True)
    assert resolve("https://93.184.215.14:8443/hook", allow_private=False) == ["93.184.215.14"]


@pytest.fixture(scope="module")
def keyed_url(keyed_api) -> str:
    return keyed_api[0]


def tenant_with_seed(url: str, **quotas: Any) -> tuple[str, dict[str, str]]:
    _tenant, key = make_tenant("hooks", **quotas)
    with keyed_client(url, key) as client:
        dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
        model = client.post("/v1/models", json=SEED_MODEL).json()["id"]
    return key, {"model": model, "dataset": dataset}


def test_deliveries_never_cross_tenants(keyed_url, receivers):
    key_a, seed_a = tenant_with_seed(keyed_url)
    key_b, _seed_b = tenant_with_seed(keyed_url)
    to_a, to_b = receivers(), receivers()
    with keyed_client(keyed_url, key_a) as a, keyed_client(keyed_url, key_b) as b:
        hook_a = a.post("/v1/webhooks", json={"url": to_a.url}).json()
        hook_b = b.post("/v1/webhooks", json={"url": to_b.url}).json()
        assert [h["id"] for h in a.get("/v1/webhooks").json()] == [hook_a["id"]]
        assert [h["id"] for h in b.get("/v1/webhooks").json()] == [hook_b["id"]]
        # Another tenant's hook is as missing as one that never was, for every route.
        for method, path in [("GET", f"/v1/webhooks/{hook_a['id']}"), ("DELETE", f"/v1/webhooks/{hook_a['id']}"),
                             ("GET", f"/v1/webhooks/{hook_a['id']}/deliveries")]:
            foreign, missing = b.request(method, path), b.request(method, path.replace(hook_a["id"], MISSING))
            assert foreign.status_code == missing.status_code == 404
            assert json.loads(foreign.text.replace(hook_a["id"], MISSING)) == missing.json()

        job = finished_job(a, seed_a)
        assert job["status"] == "succeeded", job["error"]
        [delivery] = wait_until(lambda: settled(a, hook_a["id"], job["id"]), what="A's hook is told of A's job")
        assert delivery["status"] == "delivered" and len(to_a.about(job["id"])) == 1
        time.sleep(1.5)  # three polls of every sender
        assert to_b.requests == [] and deliveries(b, hook_b["id"]) == []
        # A's hook survived B's DELETE.
        assert a.get(f"/v1/webhooks/{hook_a['id']}").status_code == 200


def test_cancels_are_delivered_from_the_queue_and_from_a_running_job(keyed_url, receivers):
    key, seed = tenant_with_seed(keyed_url, max_running_jobs=1)
    receiver = receivers()
    with keyed_client(keyed_url, key) as client:
        hook = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["job.cancelled"]}).json()
        # Trains until cancelled: still running when the test cancels it, however fast the machine trains.
        running = client.post("/v1/jobs", json=fit_request(seed["model"], seed["dataset"], epochs=100_000)).json()
        wait_until(lambda: client.get(f"/v1/jobs/{running['id']}").json()["status"] == "running", timeout_s=300,
                   what="the long job runs")
        # The tenant may run one job at a time: this one waits in the queue, and is cancelled there by the API.
        queued = client.post("/v1/jobs", json=fit_request(seed["model"], seed["dataset"], epochs=1)).json()
        assert client.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
        assert client.post(f"/v1/jobs/{running['id']}/cancel").status_code == 202
        assert wait_for_job(client, running["id"])["status"] == "cancelled"
        for job_id in (queued["id"], running["id"]):
            [delivery] = wait_until(lambda job_id=job_id: settled(client, hook["id"], job_id), what=job_id)
            assert delivery["status"] == "delivered" and delivery["event"] == "job.cancelled"
            [request] = receiver.about(job_id)
            assert json.loads(request["body"])["job"]["status"] == "cancelled"
        assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
        assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_ends_outside_the_worker_store_their_deliveries_in_the_transaction_that_ends_the_job(server_env, worker,
                                                                                            receivers):
    """A job the reaper fails (its workers kept dying) and a job cancelled while queued: each end and its delivery
    are one transaction (rolled back together), and the workers' senders deliver them."""
    from sqlalchemy import text

    from app.core.database import session_scope
    from app.core.sql import ask
    from app.core.tables import ModelSpec, Tenant, utcnow
    from app.jobs import repository as jobs_repository
    from app.jobs import service as jobs_service
    from app.webhooks import repository as hooks_repository
    from workers import reaper

    receiver = receivers()
    queue = f"nobody-serves-{uuid.uuid4().hex[:8]}"  # no worker takes these jobs
    with session_scope() as session:
        tenant = Tenant(name=f"hooks-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.flush()
        model = ModelSpec(tenant_id=tenant.id, name="m", spec={}, keras_config={}, summary={})
        session.add(model)
        session.flush()
        hook = hooks_repository.insert_webhook(session, tenant_id=tenant.id, url=receiver.url, description="",
                                               events=["job.failed", "job.cancelled"], secret="whsec_test")
        common = {"tenant_id": tenant.id, "kind": "fit", "model_id": model.id, "queue": queue, "priority": 5,
                  "max_attempts": 3, "request": {"submitted": {}}}
        lost = jobs_repository.insert_job(session, status="running", attempt=3, lease_owner="gone",
                                          lease_expires_at=utcnow() - timedelta(minutes=5), **common).id
        queued, kept = (jobs_repository.insert_job(session, status="queued", **common).id for _ in range(2))
        tenant_id, hook_id = tenant.id, hook.id

    def delivered_about() -> dict[str, dict[str, Any]]:
        with session_scope() as session:
            rows, _ = ask(session, hooks_repository.deliveries_page(webhook_id=hook_id, limit=10, after=None))
        return {row.subject_id: {"event": row.event, "body": json.loads(row.body), "status": row.status}
                for row in rows}

    # A cancel whose transaction is rolled back leaves the job queued and nothing to deliver.
    with pytest.raises(RuntimeError), session_scope() as session:
        assert jobs_service.cancel_job(session, tenant_id=tenant_id, job_id=kept) == "cancelled"
        raise RuntimeError("rolled back")
    assert kept not in delivered_about()

    with session_scope() as session:
        assert jobs_service.cancel_job(session, tenant_id=tenant_id, job_id=queued) == "cancelled"
    reaper.reap_expired(requeue=lambda job: None)  # this test's, or the worker's own reaper first: either ends it
    with session_scope() as session:
        statuses = dict(session.execute(text("SELECT id, status FROM jobs WHERE id IN (:a, :b, :c)"),
                                        {"a": lost, "b": queued, "c": kept}).all())
    assert statuses == {lost: "failed", queued: "cancelled", kept: "queued"}

    stored = delivered_about()
    assert set(stored) == {lost, queued}
    assert stored[lost]["event"] == "job.failed" and stored[lost]["body"]["job"]["error"]["type"] == "WorkerLost"
    assert stored[queued]["event"] == "job.cancelled" and stored[queued]["body"]["job"]["status"] == "cancelled"
    # The worker's sender delivers both, each once.
    wait_until(lambda: all(d["status"] == "delivered" for d in delivered_about().values()), what="both delivered")
    assert len(receiver.about(lost)) == len(receiver.about(queued)) == 1
    assert receiver.about(lost)[0]["headers"]["X-Kerasd-Signature"] == \
        "sha256=" + hmac.new(b"whsec_test", receiver.about(lost)[0]["body"], hashlib.sha256).hexdigest()
    with session_scope() as session:
        jobs_service.cancel_job(session, tenant_id=tenant_id, job_id=kept)
