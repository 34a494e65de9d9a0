"""The job reads on the event loop's own PostgreSQL connections (app/core/read_pool.py): the same answers as the
synchronous path, byte for byte, and a kept connection that PostgreSQL dropped is replaced without an error."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest

from app.http.deps import Page


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
    from app.core.errors import Problem
    from app.core.read_pool import ReadPool, conninfo
    from app.jobs import repository as job_reads

    database_url, tenant_id, ids = jobs_of_a_tenant

    def page(read, **filters):
        items, total = read
        return Page(items=items, total=total, limit=filters["limit"], offset=filters["offset"]).model_dump_json()

    async def main():
        pool = ReadPool(conninfo(database_url))
        try:
            with get_read_sessionmaker()() as session:
                for job_id in ids:
                    ours = await pool.run(lambda c, job_id=job_id: job_reads.job_document_pg(
                        c, tenant_id=tenant_id, job_id=job_id))
                    assert ours.model_dump_json() == job_reads.job_document(
                        session, tenant_id=tenant_id, job_id=job_id).model_dump_json()
                for status in (None, "queued", "running", "cancelled"):
                    for limit, offset in ((50, 0), (2, 1), (5, 10)):
                        filters = {"tenant_id": tenant_id, "status": status, "model_id": None, "limit": limit,
                                   "offset": offset}
                        ours = await pool.run(lambda c, filters=filters: job_reads.job_page_pg(c, **filters))
                        assert page(ours, **filters) == page(job_reads.job_page(session, **filters), **filters)
            # Another tenant's job is as missing as one that never was; the connection is kept for the next read.
            with pytest.raises(Problem) as missing:
                await pool.run(lambda c: job_reads.job_document_pg(c, tenant_id="someone-else", job_id=ids[0]))
            assert missing.value.status == 404
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
            read = lambda c: job_reads.job_document_pg(c, tenant_id=tenant_id, job_id=ids[3])  # noqa: E731
            first = await pool.run(read)
            [kept] = pool._idle
            with psycopg.connect(conninfo(database_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [kept.info.backend_pid])
            assert (await pool.run(read)) == first
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
            return [await pool.run(lambda c, t=t: read_tenant_limits(c, t)) for t in (tenant_id, "no-such-tenant")]
        finally:
            await pool.close()

    ours = asyncio.run(main())
    with session_scope() as session:
        assert ours == [tenant_limits(session, t, fresh=True) for t in (tenant_id, "no-such-tenant")]
    assert ours[0].requests_per_s == 2.5 and ours[0].queued_jobs == 7
