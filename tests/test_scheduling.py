"""Fair turns (workers/scheduling.py) with a running-jobs quota, two workers, and turns lost in the broker."""

from __future__ import annotations

import uuid
from datetime import datetime
from itertools import pairwise

import pytest
import redis

from tests.holds import running_until_cancelled, wait_until
from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, submit, upload, wait_for_job
from tests.services import REDIS_URL, Process, kerasd_command
from tests.tenancy import keyed_client, make_tenant


@pytest.fixture()
def second_worker(keyed_env, keyed_api, logs_dir):
    name = f"second-{uuid.uuid4().hex[:6]}"
    process = Process(
        kerasd_command("worker", "--gpus", "none", "--name", f"{name}@%h"), keyed_env, logs_dir / f"{name}.log"
    )
    try:
        process.wait_for_log(" ready.", timeout_s=180)
        yield process
    finally:
        process.stop()


def seeded(client) -> tuple[str, str]:
    dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
    return client.post("/v1/models", json=SEED_MODEL).json()["id"], dataset


def interval(job: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["finished_at"])


def test_a_tenant_at_its_running_quota_waits_its_turn_and_others_use_the_free_worker(
    keyed_api, keyed_worker, second_worker
):
    url = keyed_api[0]

    def logs() -> tuple[str, str]:
        return keyed_worker.log_text(), second_worker.log_text()

    _limited, limited_key = make_tenant("one-at-a-time", max_running_jobs=1)
    _other, other_key = make_tenant("neighbour")
    with keyed_client(url, limited_key) as limited, keyed_client(url, other_key) as other:
        model, dataset = seeded(limited)
        # The first of the limited tenant's jobs trains until it is cancelled, so what happens beside it does
        # not depend on how fast this machine trains.
        endless = running_until_cancelled(limited, model, dataset)
        ids = [submit(limited, fit_request(model, dataset, epochs=3, batch_size=20)) for _ in range(2)]
        # The free worker takes their turns and hands them back: the tenant is at its quota. (Its log, before
        # any other tenant has a job waiting: the turn named is one of these two jobs'.)
        wait_until(
            lambda: any(f"the turn of job {job_id} goes back" in log for log in logs() for job_id in ids),
            what="a turn of the limited tenant's handed back",
        )
        assert [limited.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in ids] == ["queued", "queued"]
        other_model, other_dataset = seeded(other)
        other_id = submit(other, fit_request(other_model, other_dataset, epochs=3, batch_size=20))
        # The other tenant's job runs on the free worker, beside the limited tenant's running one...
        neighbour = wait_for_job(other, other_id)
        assert neighbour["status"] == "succeeded" and neighbour["attempt"] == 1
        # ...whose other jobs still wait, though a worker is free: the quota holds them.
        assert limited.get(f"/v1/jobs/{endless}").json()["status"] == "running"
        assert [limited.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in ids] == ["queued", "queued"]
        assert limited.post(f"/v1/jobs/{endless}/cancel").status_code == 202
        jobs = [wait_for_job(limited, job_id) for job_id in [endless, *ids]]
    assert jobs[0]["status"] == "cancelled"
    # The turns handed back were spent once the quota allowed: nothing was lost.
    assert all(job["status"] == "succeeded" and job["attempt"] == 1 for job in jobs[1:])
    # Never two of the limited tenant's jobs at once, though two workers were free.
    spans = sorted(interval(job) for job in jobs)
    for (_, end), (start, _) in pairwise(spans):
        assert start >= end, spans
    start, end = interval(neighbour)
    assert spans[0][0] < start and end < spans[0][1], (spans, neighbour)


def test_turns_lost_in_the_broker_are_topped_up(keyed_api, keyed_env):
    """Counted against what the one-GPU queue held before (other tests' jobs may wait there, with their turns):
    the submission adds one turn; once the queue's turns are lost, a top-up sends one per claimable job."""
    from app.core.database import session_scope
    from app.core.repositories import jobs
    from app.core.sql import ask
    from app.core.tables import utcnow
    from workers.scheduling import MAX_TOP_UP, TurnKeeper, broker_lists, top_up_turns

    url = keyed_api[0]
    _tenant, key = make_tenant("lost-turns")
    broker = redis.Redis.from_url(REDIS_URL)
    # No worker here serves the one-GPU queue: its jobs and their messages wait there.
    queue = f"{keyed_env['KERASD_QUEUE']}.gpu"

    def turns() -> int:
        return sum(broker.llen(key) for key in broker_lists(queue))

    def claimable() -> int:
        with session_scope() as session:
            return {q: n for q, n, _ in ask(session, jobs.claimable_by_queue(now=utcnow()))}.get(queue, 0)

    with keyed_client(url, key) as client:
        model, dataset = seeded(client)
        turns_before, claimable_before = turns(), claimable()
        job = client.post("/v1/jobs", json=fit_request(model, dataset, epochs=1) | {"resources": {"gpus": 1}}).json()
        assert turns() == turns_before + 1 and claimable() == claimable_before + 1
        assert queue not in top_up_turns(broker) or claimable_before > turns_before, "nothing was lost yet"
        broker.delete(*broker_lists(queue))  # the turns are lost (a Redis restarted without its file)
        waiting = claimable()
        assert 1 <= waiting <= MAX_TOP_UP
        top_up_turns(broker)
        # One turn a job again (twice that if a worker's own turn keeper topped up in the same instant).
        assert waiting <= turns() <= 2 * waiting
        # A worker's keeper sends only what a queue lacked in two rounds running: a turn a worker has just
        # taken is missing from the queue for a moment without being lost.
        broker.delete(*broker_lists(queue))
        keeper = TurnKeeper(interval_s=3600, broker_url=REDIS_URL)
        assert keeper.round() == {}
        keeper.round()
        assert waiting <= turns() <= 2 * waiting
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    # The other jobs still waiting in the queue get their turns back.
    broker.delete(*broker_lists(queue))
    top_up_turns(broker)
