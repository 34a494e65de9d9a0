"""The repositories' questions on the event loop's own PostgreSQL connections (app/core/read_pool.py): the same
answers as on a session, byte for byte, and a kept connection that PostgreSQL dropped is replaced without an
error."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest


@pytest.fixture()
def jobs_of_a_tenant(database_url, monkeypatch):
    monkeypatch.setenv("KERASD_DATABASE_URL", database_url)
    from app.core.database import get_engine, get_sessionmaker, session_scope
    from app.core.settings import get_settings
    from app.core.tables import EpochLog, Job, ModelSpec, utcnow
    from app.tenants import service as tenants

    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()
    with session_scope() as session:
        tenant = tenants.create_tenant(session, name=f"reads-{uuid.uuid4().hex[:6]}", quotas={})
        model = ModelSpec(tenant_id=tenant.id, name="m", spec={}, keras_config={}, summary={})
        session.add(model)
        session.flush()
        now, ids = utcnow(), []
        for i, status in enumerate(("queued", "queued", "running", "succeeded", "failed")):
            job = Job(tenant_id=tenant.id, kind="fit", status=status, model_id=model.id, queue="q",
                      request={"submitted": {"n": i, "text": "é"}, "resolved": True},
                      created_at=now + timedelta(seconds=i),
                      attempt=0 if status == "queued" else 1, started_at=None if status == "queued" else now,
                      error={"type": "E", "message": "m"} if status == "failed" else None,
                      result={"r": [1.5, None]} if status == "succeeded" else None)
            session.add(job)
            session.flush()
            ids.append(job.id)
            if status in ("running", "succeeded"):
                for epoch in range(3):
                    session.add(EpochLog(job_id=job.id, epoch=epoch, attempt=1,
                                         logs={"loss": 1 / (epoch + 1), "accuracy": 0.5 if epoch else None}))
        tenant_id = tenant.id
    yield database_url, tenant_id, ids
    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()


def test_async_reads_answer_as_the_synchronous_ones(jobs_of_a_tenant):
    from app.core.database import get_read_sessionmaker
    from app.core.read_pool import ReadPool, conninfo
    from app.core.sql import ask
    from app.jobs import repository as job_reads

    database_url, tenant_id, ids = jobs_of_a_tenant

    def dumped(answer):
        if isinstance(answer, tuple):  # a page: (items, the last row's key or None)
            items, last = answer
            return [item.model_dump_json() for item in items], last
        return answer if isinstance(answer, int) else answer.model_dump_json()

    async def main():
        pool = ReadPool(conninfo(database_url))
        try:
            with get_read_sessionmaker()() as session:
                questions = [job_reads.job_document(tenant_id=tenant_id, job_id=job_id) for job_id in ids]
                for status in (None, "queued", "running", "cancelled"):
                    for limit in (50, 2, 1):
                        questions.append(job_reads.job_page(tenant_id=tenant_id, status=status, model_id=None,
                                                            limit=limit))
                    questions.append(job_reads.job_count(tenant_id=tenant_id, status=status, model_id=None,
                                                         estimate=False))
                _first, more = ask(session, job_reads.job_page(tenant_id=tenant_id, status=None, model_id=None,
                                                              limit=2))
                assert more is not None
                questions.append(job_reads.job_page(tenant_id=tenant_id, status=None, model_id=None, limit=2,
                                                    after=more))
                for question in questions:
                    ours = await pool.ask(question)
                    assert dumped(ours) == dumped(ask(session, question))
            # Another tenant's job is as missing as one that never was; the connection is kept for the next read.
            assert await pool.ask(job_reads.job_document(tenant_id="someone-else", job_id=ids[0])) is None
            assert len(pool._idle) == 1
        finally:
            await pool.close()

    asyncio.run(main())


def test_a_dropped_connection_is_replaced(jobs_of_a_tenant):
    from app.core.read_pool import ReadPool, conninfo
    from app.jobs import repository as job_reads

    database_url, tenant_id, ids = jobs_of_a_tenant

    async def main():
        pool = ReadPool(conninfo(database_url))
        try:
            question = job_reads.job_document(tenant_id=tenant_id, job_id=ids[3])
            first = await pool.ask(question)
            [kept] = pool._idle
            with psycopg.connect(conninfo(database_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [kept.info.backend_pid])
            assert (await pool.ask(question)) == first
            assert [c.info.backend_pid for c in pool._idle] != [kept.info.backend_pid]
        finally:
            await pool.close()

    asyncio.run(main())


def test_tenant_limits_on_the_loop_are_those_of_the_session(jobs_of_a_tenant):
    from app.core.database import session_scope
    from app.core.quotas import read_tenant_limits, tenant_limits
    from app.core.read_pool import ReadPool, conninfo
    from app.core.tables import Tenant

    database_url, tenant_id, _ids = jobs_of_a_tenant
    with session_scope() as session:
        tenant = session.get(Tenant, tenant_id)
        tenant.requests_per_s, tenant.max_queued_jobs = 2.5, 7

    async def main():
        pool = ReadPool(conninfo(database_url))
        try:
            return [await read_tenant_limits(pool, t) for t in (tenant_id, "no-such-tenant")]
        finally:
            await pool.close()

    ours = asyncio.run(main())
    with session_scope() as session:
        assert ours == [tenant_limits(session, t, fresh=True) for t in (tenant_id, "no-such-tenant")]
    assert ours[0].requests_per_s == 2.5 and ours[0].queued_jobs == 7
