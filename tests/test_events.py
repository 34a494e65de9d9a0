"""The job event stream: replay, late and reconnecting subscribers, many subscribers, lifetime, SQL replay.

Everything runs against the real API and worker processes; a job a subscriber must join while it trains runs
until the test cancels it (the assertions never depend on how fast it trains).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from tests.holds import running_until_cancelled
from tests.seed import SEED_MODEL, fit_request, npz_bytes, read_events, upload, wait_for_job
from tests.services import REDIS_URL, Process, running_api

EVENT_FIELDS = {"v", "id", "type", "job_id", "attempt", "ts", "data"}


def arrays(rows: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"train_x": rng.random((rows, 72), dtype="float32"),
            "train_y": np.eye(10, dtype="float32")[rng.integers(0, 10, rows)],
            "val_x": rng.random((200, 72), dtype="float32"),
            "val_y": np.eye(10, dtype="float32")[rng.integers(0, 10, 200)]}


@pytest.fixture(scope="module")
def model_id(client_module: httpx.Client) -> str:
    response = client_module.post("/v1/models", json=SEED_MODEL)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def client_module(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def slow_dataset(client_module: httpx.Client) -> str:
    """Enough rows that an epoch at batch size 10 takes a while on any machine."""
    response = upload(client_module, "slow.npz", npz_bytes(**arrays(12_000)))
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def small_dataset(client_module: httpx.Client) -> str:
    response = upload(client_module, "small.npz", npz_bytes(**arrays(1000, seed=2)))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(client: httpx.Client, model_id: str, dataset_id: str, **fit: Any) -> str:
    response = client.post("/v1/jobs", json=fit_request(model_id, dataset_id, **fit))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def assert_well_formed(found: list[dict[str, Any]], job_id: str) -> None:
    assert found, "no events"
    for event in found:
        assert EVENT_FIELDS <= set(event), event
        assert event["v"] == 1 and event["job_id"] == job_id
    ids = [tuple(map(int, e["id"].split("-"))) for e in found]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids must strictly increase"
    types = [e["type"] for e in found]
    assert types[0] == "queued" and types[-1] in ("finished", "failed", "cancelled"), types
    assert sum(t in ("finished", "failed", "cancelled") for t in types) == 1, types


class Follower(threading.Thread):
    """Reads a job's stream in the background, from the start or after an id, optionally stopping early."""

    def __init__(self, api_url: str, job_id: str, *, last_event_id: str | None = None,
                 stop_after: Any = None) -> None:
        super().__init__(daemon=True)
        self.api_url, self.job_id, self.last_event_id, self.stop_after = api_url, job_id, last_event_id, stop_after
        self.found: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        try:
            with httpx.Client(base_url=self.api_url, timeout=300) as http, \
                    http.stream("GET", f"/v1/jobs/{self.job_id}/events", headers=headers) as response:
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.found.append(json.loads(line[6:]))
                        if self.stop_after and self.stop_after(self.found[-1]):
                            return  # closes the connection mid-stream, as a dropped client would
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float = 300) -> list[dict[str, Any]]:
        self.join(timeout)
        assert not self.is_alive(), "the event stream did not end"
        if self.error:
            raise self.error
        return self.found


def wait_until(predicate: Any, timeout_s: float = 300, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def epoch_seen(found: list[dict[str, Any]], epoch: int) -> bool:
    return any(e["type"] == "epoch" and e["data"]["epoch"] == epoch for e in list(found))


def test_late_and_reconnecting_subscribers_see_every_event_once_in_order(
        client_module: httpx.Client, api_url: str, model_id: str, slow_dataset: str) -> None:
    # Trains until cancelled below, after every subscriber has joined: each join happens while it trains.
    job_id = submit(client_module, model_id, slow_dataset, epochs=100_000, batch_size=10)
    reference = Follower(api_url, job_id)
    reference.start()
    # Disconnects right after the epoch-5 event (0-based epoch 4) has arrived.
    first_half = Follower(api_url, job_id, stop_after=lambda e: e["type"] == "epoch" and e["data"]["epoch"] == 4)
    first_half.start()

    wait_until(lambda: epoch_seen(reference.found, 2), what="epoch 3")
    late_status = client_module.get(f"/v1/jobs/{job_id}").json()["status"]
    late = Follower(api_url, job_id)
    late.start()

    before_disconnect = first_half.result()
    assert before_disconnect[-1]["type"] == "epoch" and before_disconnect[-1]["data"]["epoch"] == 4
    # Stay away while more events are published, then come back where we left off.
    wait_until(lambda: epoch_seen(reference.found, 5), what="epoch 6")
    reconnect_status = client_module.get(f"/v1/jobs/{job_id}").json()["status"]
    second_half = Follower(api_url, job_id, last_event_id=before_disconnect[-1]["id"])
    second_half.start()
    # Live events reach both joiners before the end: the next epoch after the reconnect.
    wait_until(lambda: epoch_seen(second_half.found, 6) and epoch_seen(late.found, 6), what="epoch 7 live")
    assert client_module.post(f"/v1/jobs/{job_id}/cancel").status_code == 202

    everything = reference.result()
    assert_well_formed(everything, job_id)
    assert everything[-1]["type"] == "cancelled", everything[-1]
    epochs = [e["data"]["epoch"] for e in everything if e["type"] == "epoch"]
    assert len(epochs) >= 7 and epochs == list(range(len(epochs)))
    assert sum(e["type"] == "batch" for e in everything) > 10

    # The joins happened while the job trained, so both went from replay to live events.
    assert late_status == reconnect_status == "running"
    assert late.result() == everything
    after_reconnect = second_half.result()
    assert after_reconnect and after_reconnect[0]["id"] != before_disconnect[-1]["id"]
    assert before_disconnect + after_reconnect == everything

    # A subscriber long after the end still gets everything from the start.
    assert read_events(client_module, job_id) == everything
    # One that already has the terminal event is told to stop: 204 makes EventSource give up.
    done = client_module.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": everything[-1]["id"]})
    assert done.status_code == 204


def test_event_contract_of_a_finished_job(client_module: httpx.Client, model_id: str, small_dataset: str) -> None:
    job_id = submit(client_module, model_id, small_dataset, epochs=3)
    found = read_events(client_module, job_id)
    assert_well_formed(found, job_id)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in found:
        by_type.setdefault(event["type"], []).append(event)
    assert by_type["queued"][0]["attempt"] == 0 and by_type["queued"][0]["data"]["kind"] == "fit"
    assert by_type["started"][0]["attempt"] >= 1
    for batch in by_type["batch"]:
        data = batch["data"]
        assert {"epoch", "step", "steps", "logs", "steps_per_s", "samples_per_s", "eta_s"} <= set(data)
        assert 1 <= data["step"] <= data["steps"] == 10 and "loss" in data["logs"]
    epochs = by_type["epoch"]
    assert [e["data"]["epoch"] for e in epochs] == [0, 1, 2] and all(e["data"]["epochs"] == 3 for e in epochs)
    assert set(epochs[0]["data"]["logs"]) == {"loss", "categorical_accuracy", "val_loss", "val_categorical_accuracy"}
    finished = by_type["finished"][0]["data"]
    assert finished["status"] == "succeeded" and "weights.h5" in finished["artifacts"]
    job = client_module.get(f"/v1/jobs/{job_id}").json()
    assert finished["result"]["history"] == job["history"]
    # Timestamps are ISO 8601 UTC and never go back.
    stamps = [e["ts"] for e in found]
    assert all(s.endswith("+00:00") for s in stamps)

    # Resuming from the middle gives exactly the rest.
    middle = len(found) // 2
    rest = read_events(client_module, job_id, last_event_id=found[middle - 1]["id"])
    assert rest == found[middle:]
    assert client_module.get(f"/v1/jobs/{job_id}/events", params={"after": found[-2]["id"]}).text.count("data: ") == 1


def test_checkpoint_and_log_events(client_module: httpx.Client, model_id: str, small_dataset: str) -> None:
    request = fit_request(model_id, small_dataset, epochs=3)
    request["callbacks"] = [{"class_name": "ModelCheckpoint", "config": {"monitor": "val_loss"}}]
    response = client_module.post("/v1/jobs", json=request)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    found = read_events(client_module, job_id)
    assert_well_formed(found, job_id)
    checkpoints = [e["data"] for e in found if e["type"] == "checkpoint"]
    declared = [c for c in checkpoints if c["kind"] == "declared"]
    assert [c["epoch"] for c in declared] == [0, 1, 2]
    assert all(c["name"] == "checkpoint.weights.h5" and c["size_bytes"] > 0 for c in declared)
    # The worker's own checkpoint, every epoch by default (KERASD_CHECKPOINT_EVERY_EPOCHS=1).
    resume = [c for c in checkpoints if c["kind"] == "resume"]
    assert [c["epoch"] for c in resume] == [0, 1, 2] and all(c["name"] == "resume.keras" for c in resume)
    # Each epoch's checkpoints follow its epoch event.
    previous_epoch = None
    for event in found:
        if event["type"] == "epoch":
            previous_epoch = event["data"]["epoch"]
        elif event["type"] == "checkpoint":
            assert event["data"]["epoch"] == previous_epoch
    assert found[-1]["type"] == "finished" and "checkpoint.weights.h5" in found[-1]["data"]["artifacts"]
    logs = [e["data"] for e in found if e["type"] == "log"]
    assert {"level": "info", "message": "fit: 3 epoch(s) of 10 step(s) of 100 samples"} in logs
    batch = next(e["data"] for e in found if e["type"] == "batch")
    assert batch["samples_per_s"] == pytest.approx(batch["steps_per_s"] * 100)


def test_a_retried_job_streams_both_attempts_to_a_late_subscriber(
        client_module: httpx.Client, api_url: str, model_id: str, slow_dataset: str) -> None:
    # Trains until cancelled, in both attempts.
    job_id = submit(client_module, model_id, slow_dataset, epochs=100_000, batch_size=10)
    first = Follower(api_url, job_id)
    first.start()
    wait_until(lambda: any(e["type"] == "batch" for e in list(first.found)), what="training")
    assert client_module.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    first_run = first.result()
    assert first_run[-1]["type"] == "cancelled", first_run[-1]

    retried = client_module.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    # Picks up where it left off: the first run's end, then the retry's events.
    rest = Follower(api_url, job_id, last_event_id=first_run[-1]["id"])
    rest.start()
    wait_until(lambda: any(e["type"] == "batch" for e in list(rest.found)), what="the retry training")
    assert client_module.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    second_run = rest.result()
    assert [e["type"] for e in second_run][:2] == ["queued", "started"] and second_run[-1]["type"] == "cancelled"
    assert second_run[1]["attempt"] == first_run[1]["attempt"] + 1

    # A subscriber from the start gets both attempts, past the first end.
    assert read_events(client_module, job_id) == first_run + second_run


def test_the_stream_keeps_every_event_but_old_batch_events() -> None:
    from app.core import events
    from workers.progress import EventPublisher

    client = redis.Redis.from_url(REDIS_URL)
    job_id = f"publisher-test-{time.monotonic_ns()}"
    publisher = EventPublisher(client, job_id=job_id, attempt=1, maxlen=5, ttl_s=60)
    publisher.publish("started", {"attempt": 1, "worker": "test"})
    for epoch in range(4):
        for step in range(6):
            publisher.publish("batch", {"epoch": epoch, "step": step + 1})
            time.sleep(0.002)  # several publisher round trips, as in training
        publisher.publish("epoch", {"epoch": epoch})
    publisher.publish("finished", {"status": "succeeded"})
    publisher.close()
    kept = [events.decode(i, f) for i, f in client.xrange(events.stream_key(job_id))]
    client.delete(events.stream_key(job_id))
    assert [e["type"] for e in kept if e["type"] != "batch"] == ["started"] + ["epoch"] * 4 + ["finished"]
    assert [(e["data"]["epoch"], e["data"]["step"]) for e in kept if e["type"] == "batch"] == [
        (3, 2), (3, 3), (3, 4), (3, 5), (3, 6)]


def test_the_publisher_holds_events_through_a_redis_outage(tmp_path) -> None:
    from app.core import events
    from tests.outage_services import PrivateRedis
    from workers.progress import EventPublisher

    server = PrivateRedis(tmp_path)
    client = redis.Redis.from_url(server.url, socket_timeout=2)
    job_id = f"outage-publisher-{time.monotonic_ns()}"
    publisher = EventPublisher(client, job_id=job_id, attempt=1, maxlen=100, ttl_s=60)
    try:
        publisher.publish("started", {"attempt": 1, "worker": "test"})
        publisher.publish("epoch", {"epoch": 0})
        wait_until(lambda: client.xlen(events.stream_key(job_id)) == 2, what="the first events")
        server.stop()
        for epoch in (1, 2):
            publisher.publish("batch", {"epoch": epoch, "step": 1})  # best effort: dropped in an outage
            publisher.publish("epoch", {"epoch": epoch})
            time.sleep(0.6)  # past a retry
        server.start()
        publisher.publish("finished", {"status": "succeeded"})
        publisher.close(timeout=10)
        kept = [events.decode(i, f) for i, f in client.xrange(events.stream_key(job_id))]
    finally:
        server.stop()
    assert [(e["type"], e["data"].get("epoch")) for e in kept] == [
        ("started", None), ("epoch", 0), ("epoch", 1), ("epoch", 2), ("finished", None)]


def test_event_stream_errors(client_module: httpx.Client, model_id: str, small_dataset: str) -> None:
    missing = client_module.get("/v1/jobs/0123456789abcdef0123456789abcdef/events")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    job_id = submit(client_module, model_id, small_dataset, epochs=1)
    bad = client_module.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]
    wait_for_job(client_module, job_id)


def test_finished_job_replays_from_sql_when_its_stream_is_gone(
        client_module: httpx.Client, model_id: str, small_dataset: str) -> None:
    job_id = submit(client_module, model_id, small_dataset, epochs=4)
    live = read_events(client_module, job_id)
    redis.Redis.from_url(REDIS_URL).delete(f"kerasd:job:{job_id}:events")  # as if it had expired

    replay = read_events(client_module, job_id)
    assert [e["type"] for e in replay] == ["epoch"] * 4 + ["finished"]
    assert all(e["replayed"] is True and e["id"] is None for e in replay)
    live_epochs = [e["data"]["logs"] for e in live if e["type"] == "epoch"]
    assert [e["data"]["logs"] for e in replay[:-1]] == live_epochs
    live_end = live[-1]["data"]
    assert replay[-1]["data"]["status"] == "succeeded"
    assert replay[-1]["data"]["result"]["history"] == live_end["result"]["history"]
    assert replay[-1]["data"]["artifacts"] == sorted(live_end["artifacts"])


async def _subscribe(http: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    found = []
    async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
    return found


def test_a_hundred_concurrent_subscribers_all_get_every_event(
        client_module: httpx.Client, api_url: str, model_id: str, slow_dataset: str) -> None:
    # Untuned, at batch size 10: long enough for live batch events whatever the machine's speed (execution
    # tuning finished the same fit at batch size 50 within a few event intervals on a fast machine).
    created = client_module.post("/v1/jobs", json={
        **fit_request(model_id, slow_dataset, epochs=3, batch_size=10), "tuning": False})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    async def everyone() -> list[list[dict[str, Any]]]:
        limits = httpx.Limits(max_connections=150, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=api_url, timeout=300, limits=limits) as http:
            return await asyncio.gather(*(_subscribe(http, job_id) for _ in range(100)))

    results = asyncio.run(everyone())
    reference = read_events(client_module, job_id)
    assert_well_formed(reference, job_id)
    assert reference[-1]["type"] == "finished"
    assert sum(e["type"] == "batch" for e in reference) > 3
    assert len(results) == 100
    assert all(found == reference for found in results), [len(found) for found in results]


@pytest.fixture(scope="module")
def short_lived_api(server_env: dict[str, str], worker: Process, logs_dir: Path) -> Iterator[str]:
    """A second API process whose SSE connections last 2 s and send heartbeats every 0.3 s."""
    env = {**server_env, "KERASD_SSE_MAX_CONNECTION_S": "2", "KERASD_SSE_HEARTBEAT_S": "0.3",
           "KERASD_SSE_RETRY_MS": "100"}
    with running_api(env, logs_dir / "api-short-sse.log") as (url, _process):
        yield url


def test_capped_connections_send_heartbeats_and_a_retry_hint_and_resume_losslessly(
        client_module: httpx.Client, short_lived_api: str, model_id: str, slow_dataset: str,
        small_dataset: str) -> None:
    # The worker trains one job at a time: the second job's stream stays quiet while the first trains, which it
    # does until cancelled once the quiet stream has been cut at its cap and resumed.
    busy = running_until_cancelled(client_module, model_id, slow_dataset)
    quiet = submit(client_module, model_id, small_dataset, epochs=2)
    found: list[dict[str, Any]] = []
    connections, heartbeats, retry_hints = 0, 0, []
    with httpx.Client(base_url=short_lived_api, timeout=60) as http:
        while not found or found[-1]["type"] not in ("finished", "failed", "cancelled"):
            assert connections < 500, "the stream never ended"
            headers = {"Last-Event-ID": found[-1]["id"]} if found else {}
            connections += 1
            with http.stream("GET", f"/v1/jobs/{quiet}/events", headers=headers) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("retry: "):
                        retry_hints.append(int(line[7:]))
                    elif line == ": heartbeat":
                        heartbeats += 1
                    elif line.startswith("data: "):
                        found.append(json.loads(line[6:]))
            if connections == 2:
                assert heartbeats >= 1 and [e["type"] for e in found] == ["queued"], found
                assert client_module.post(f"/v1/jobs/{busy}/cancel").status_code == 202
            # Reconnecting after the hinted delay, as EventSource does.
            time.sleep(retry_hints[-1] / 1000)
    assert wait_for_job(client_module, busy)["status"] == "cancelled"
    assert connections >= 2 and heartbeats >= 1
    assert set(retry_hints) == {100}
    assert found == read_events(client_module, quiet)
    assert_well_formed(found, quiet)
