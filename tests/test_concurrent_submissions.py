"""200 job submissions at once from 4 tenants (issue 9): exactly 200 jobs exist, each runs once, none is lost
or duplicated, and the real worker drains them all."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import redis
from sqlalchemy import func, select

from app.core.events import stream_key
from tests.seed import npz_bytes, upload
from tests.services import REDIS_URL
from tests.tenancy import keyed_client, make_tenant

TENANTS, PER_TENANT = 4, 50
TINY_MODEL = {"type": "sequential", "input_shape": [4], "layers": [{"class_name": "Dense", "units": 2}]}


def tiny_job(model_id: str, dataset_id: str, index: int) -> dict:
    return {"kind": "fit", "model_id": model_id, "seed": index, "tuning": False, "artifacts": ["weights.h5"],
            "compile": {"optimizer": "sgd", "loss": "mse"},
            "fit": {"x": {"dataset_id": dataset_id, "array": "x"}, "y": {"dataset_id": dataset_id, "array": "y"},
                    "epochs": 1, "batch_size": 16}}


def test_200_concurrent_submissions_from_4_tenants_each_run_once(keyed_api):
    from app.core.database import session_scope
    from app.core.tables import EpochLog, Job

    url = keyed_api[0]
    rng = np.random.default_rng(0)
    tenants = []
    for index in range(TENANTS):
        tenant_id, key = make_tenant(f"burst{index}")
        with keyed_client(url, key) as client:
            data = npz_bytes(x=rng.random((32, 4), dtype="float32"), y=rng.random((32, 2), dtype="float32"))
            dataset = upload(client, "tiny.npz", data).json()["id"]
            model = client.post("/v1/models", json=TINY_MODEL).json()["id"]
        tenants.append({"id": tenant_id, "key": key, "dataset": dataset, "model": model})

    clients = [keyed_client(url, t["key"], limits=httpx.Limits(max_connections=PER_TENANT)) for t in tenants]

    def submit(n: int) -> tuple[int, int, str]:
        tenant = n % TENANTS
        response = clients[tenant].post("/v1/jobs", json=tiny_job(tenants[tenant]["model"],
                                                                  tenants[tenant]["dataset"], n))
        return tenant, response.status_code, response.text

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=TENANTS * PER_TENANT) as pool:
        answers = list(pool.map(submit, range(TENANTS * PER_TENANT)))
    submitted_s = time.monotonic() - started
    assert [status for _, status, _ in answers] == [201] * 200, [a for a in answers if a[1] != 201][:3]
    ids = [json.loads(text)["id"] for _, _, text in answers]
    assert len(set(ids)) == 200

    deadline = time.monotonic() + 900
    tenant_ids = [t["id"] for t in tenants]
    while time.monotonic() < deadline:
        with session_scope() as session:
            open_jobs = session.scalar(select(func.count()).select_from(Job).where(
                Job.tenant_id.in_(tenant_ids), Job.status.in_(("queued", "running"))))
        if open_jobs == 0:
            break
        time.sleep(1)
    drained_s = time.monotonic() - started
    for client in clients:
        client.close()

    with session_scope() as session:
        jobs = session.execute(select(Job.id, Job.tenant_id, Job.status, Job.attempt)
                               .where(Job.tenant_id.in_(tenant_ids))).all()
        epochs = dict(session.execute(select(EpochLog.job_id, func.count()).where(EpochLog.job_id.in_(ids))
                                      .group_by(EpochLog.job_id)).all())
    assert len(jobs) == 200 and {job.id for job in jobs} == set(ids)
    assert {job.status for job in jobs} == {"succeeded"}, [j for j in jobs if j.status != "succeeded"][:3]
    # Each ran once: one attempt, one epoch, and each tenant's own 50.
    assert {job.attempt for job in jobs} == {1}
    assert all(epochs.get(job_id) == 1 for job_id in ids)
    assert sorted(sum(job.tenant_id == t for job in jobs) for t in tenant_ids) == [PER_TENANT] * TENANTS
    # And each job's event stream has one start.
    streams = redis.Redis.from_url(REDIS_URL)
    for job_id in ids:
        types = [fields[b"type"].decode() for _, fields in streams.xrange(stream_key(job_id))]
        assert types.count("started") == 1 and types.count("finished") == 1, (job_id, types)
    print(f"\n200 submissions in {submitted_s:.1f} s; drained by one worker in {drained_s:.1f} s")
