"""Queue positions follow the fair scheduler's order (priority, then arrival in the queue), on PostgreSQL and on
SQLite, across the blocks the database keeps them in; and keyset pages list every job exactly once while jobs
are being added."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from app.core.tables import QUEUE_LEVEL_SHIFTS, utcnow
from tests.services import running_api
from tests.tenancy import keyed_client, make_tenant


def _tenant_and_model(session) -> tuple[str, str]:
    from app.core.tables import ModelSpec, Tenant

    # No running-jobs quota: the claims below take every job in turn.
    tenant = Tenant(name=f"queue-{uuid.uuid4().hex[:8]}", max_running_jobs=0)
    session.add(tenant)
    session.flush()
    model = ModelSpec(tenant_id=tenant.id, name="m", spec={}, keras_config={}, summary={})
    session.add(model)
    session.flush()
    return tenant.id, model.id


def _submit(session, tenant_id: str, model_id: str, queue: str, priority: int, **values) -> str:
    from app.jobs import repository

    return repository.insert_job(session, tenant_id=tenant_id, kind="fit", status=values.pop("status", "queued"),
                                 model_id=model_id, queue=queue, priority=priority, max_attempts=3,
                                 request={"submitted": {"priority": priority}}, **values).id


def _positions(session, tenant_id: str, job_ids) -> dict[str, int | None]:
    from app.core.sql import ask
    from app.jobs import repository

    return {job_id: ask(session, repository.job_document(tenant_id=tenant_id, job_id=job_id)).queue_position
            for job_id in job_ids}


def _scheduler_rank(session, tenant_id: str, queue: str) -> list[str]:
    """The queued jobs in the scheduler's order, read straight from the rows: priority, then ticket."""
    rows = session.execute(text("SELECT id, priority, queue_ticket FROM jobs WHERE tenant_id = :t AND queue = :q "
                                "AND status = 'queued'"), {"t": tenant_id, "q": queue}).all()
    return [row.id for row in sorted(rows, key=lambda row: (-row.priority, row.queue_ticket))]


@pytest.fixture()
def database(server_env):
    from app.core.database import session_scope

    return session_scope


def test_queue_positions_are_the_order_the_scheduler_claims_in(database, server_env):
    """Mixed priorities, a cancelled job, a retried one and a lost worker's job handed back: before every claim,
    the job at position 1 is the one the scheduler takes, and positions are 1..n."""
    from app.core.settings import get_settings
    from app.jobs import service
    from workers import reaper, scheduling

    queue = f"order-{uuid.uuid4().hex[:8]}"
    settings = get_settings()
    rng = random.Random(23)
    with database() as session:
        tenant_id, model_id = _tenant_and_model(session)
        ids = [_submit(session, tenant_id, model_id, queue, rng.choice([0, 3, 5, 5, 9])) for _ in range(30)]
        retried = _submit(session, tenant_id, model_id, queue, 5, status="failed", attempt=1)
    with database() as session:
        service.cancel_job(session, tenant_id=tenant_id, job_id=ids[4])
        service.retry_job(session, tenant_id=tenant_id, job_id=retried, max_attempts=3)
    waiting = [job_id for job_id in ids if job_id != ids[4]] + [retried]

    claimed = []
    lost_handed_back = False
    while waiting:
        with database() as session:
            positions = _positions(session, tenant_id, waiting)
            assert sorted(positions.values()) == list(range(1, len(waiting) + 1))
            assert [j for j, _ in sorted(positions.items(), key=lambda item: item[1])] == \
                _scheduler_rank(session, tenant_id, queue)
            first = next(job_id for job_id, position in positions.items() if position == 1)
        taken = scheduling.claim_next(hint_job_id=first, queue=queue, owner="test", settings=settings)
        assert taken is not None and taken[0] == first, (taken, positions)
        claimed.append(first)
        waiting.remove(first)
        if len(claimed) == 10 and not lost_handed_back:
            # Its worker is lost: the reaper hands it back, and it keeps its place at the head of its lane.
            with database() as session:
                session.execute(text("UPDATE jobs SET lease_expires_at = :past WHERE id = :id"),
                                {"past": _past(), "id": first})
                priority = session.execute(text("SELECT priority FROM jobs WHERE id = :id"), {"id": first}).scalar()
            requeued = []
            assert (first, "queued") in reaper.reap_expired(requeue=requeued.append)
            # What the worker sends the job's new queue message with (workers/tasks.py's _requeue).
            assert [(job.id, job.queue, job.priority) for job in requeued if job.id == first] == \
                [(first, queue, priority)]
            waiting.append(first)
            lost_handed_back = True
    assert len(claimed) == 31


def _past():
    return utcnow() - timedelta(minutes=5)


def _check_lanes(session, tenant_id: str, queue: str, job_ids: list[str]) -> None:
    from app.core.repositories import jobs
    from app.core.sql import ask

    order = _scheduler_rank(session, tenant_id, queue)
    positions = _positions(session, tenant_id, job_ids)
    assert {job_id: position for job_id, position in positions.items() if position is not None} == \
        {job_id: rank + 1 for rank, job_id in enumerate(order)}
    assert ask(session, jobs.queued_of_tenant(tenant_id=tenant_id)) == len(order)
    # Each level of blocks holds exactly the queued jobs, and no block is at zero.
    blocks = session.execute(text("SELECT level, block, queued FROM queue_blocks WHERE tenant_id = :t"),
                             {"t": tenant_id}).all()
    for level in range(len(QUEUE_LEVEL_SHIFTS)):
        assert sum(row.queued for row in blocks if row.level == level) == len(order)
    assert all(row.queued > 0 for row in blocks)
    assert jobs.next_jobs(session, tenant_id=tenant_id, queue=queue, now=utcnow(), limit=5) == order[:5]


def _many_queued(session_scope) -> None:
    """2,500 jobs of two priorities, their tickets across blocks of every level (one lane starts just below
    32,768), some cancelled and some claimed out of the middle: positions equal the rank computed from the
    rows, and each level of blocks counts them all."""
    from app.jobs import service
    from workers import jobstate

    queue = f"blocks-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        tenant_id, model_id = _tenant_and_model(session)
        ids = [_submit(session, tenant_id, model_id, queue, 2)]
        # As if 32,000 jobs had passed through this lane: its tickets cross a block of the third level.
        session.execute(text("UPDATE queue_lanes SET next_ticket = 32000 WHERE tenant_id = :t"), {"t": tenant_id})
        ids += [_submit(session, tenant_id, model_id, queue, 7 if i % 5 == 0 else 2) for i in range(2499)]
    with session_scope() as session:
        _check_lanes(session, tenant_id, queue, ids)
    with session_scope() as session:
        for job_id in ids[1000:1100] + ids[2049:2051]:
            service.cancel_job(session, tenant_id=tenant_id, job_id=job_id)
        for job_id in ids[5:2500:400]:
            assert jobstate.take(session, job_id=job_id, owner="test", lease_s=60, now=utcnow()) == 1
    with session_scope() as session:
        _check_lanes(session, tenant_id, queue, ids)
        _walk_pages(session, tenant_id, ids)


def _walk_pages(session, tenant_id: str, ids: list[str]) -> None:
    """Cursor pages through the repository (the SQLite path of GET /v1/jobs too): every job once, newest first."""
    from app.core.sql import ask
    from app.http.deps import decode_cursor, encode_cursor
    from app.jobs import repository

    seen, after = [], None
    while True:
        items, after = ask(session, repository.job_page(tenant_id=tenant_id, status=None, model_id=None, limit=300,
                                                        after=after))
        seen += [(item.created_at, item.id) for item in items]
        if after is None:
            break
        after = decode_cursor(encode_cursor(*after))  # as the API hands it to the client and takes it back
    assert sorted(job_id for _, job_id in seen) == sorted(ids) and seen == sorted(seen, reverse=True)


def test_queue_positions_across_blocks_on_postgresql(database):
    _many_queued(database)


def test_queue_positions_across_blocks_on_sqlite(tmp_path):
    """The same on SQLite, migrated to head as `kerasd up` migrates it: its triggers keep the lanes too."""
    from contextlib import contextmanager

    from sqlalchemy.orm import sessionmaker

    from app.core.database import make_engine
    from app.core.migrate import upgrade_to_head

    url = f"sqlite:///{tmp_path / 'kerasd.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def scope():
        with factory() as session:
            yield session
            session.commit()

    try:
        _many_queued(scope)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def paging_api(keyed_env, logs_dir):
    with running_api(keyed_env, logs_dir / "paging-api.log") as (url, _process):
        yield url


def test_cursor_pages_list_every_job_exactly_once_while_jobs_are_added(paging_api, database):
    tenant_id, key = make_tenant("pages")
    with database() as session:
        model_id = _tenant_model(session, tenant_id)
        existing = {_submit(session, tenant_id, model_id, "pages", 5, status="succeeded") for _ in range(45)}
    seen: list[str] = []
    added: set[str] = set()
    with keyed_client(paging_api, key) as client:
        page = client.get("/v1/jobs", params={"limit": 7}).json()
        # More than one page: no total unless asked.
        assert page["total"] is None and page["total_kind"] is None and len(page["items"]) == 7
        while True:
            seen += [item["id"] for item in page["items"]]
            # Jobs arrive between the pages (newest first: they belong before the pages already read).
            with database() as session:
                added |= {_submit(session, tenant_id, model_id, "pages", 5, status="succeeded") for _ in range(3)}
            if page["next"] is None:
                assert page["next_cursor"] is None
                break
            page = client.get(page["next"]).json()
        assert len(seen) == len(set(seen)) and set(seen) == existing
        # A fresh listing has them all, each once; the total, counted or estimated, says which it is.
        everything = client.get("/v1/jobs", params={"limit": 500, "total": "exact"}).json()
        assert {item["id"] for item in everything["items"]} == existing | added
        assert everything["total"] == len(existing | added) and everything["total_kind"] == "exact"
        estimated = client.get("/v1/jobs", params={"limit": 5, "total": "estimate"}).json()
        assert estimated["total_kind"] == "estimate" and estimated["total"] >= 1
        by_cursor = client.get("/v1/jobs", params={"limit": 5, "cursor": page["items"][0]["id"]})
        assert by_cursor.status_code == 422 and by_cursor.json()["field"] == "cursor"
    # The SDK walks the same pages with next_cursor.
    from kerasd import Client

    with Client(paging_api, api_key=key) as sdk:
        pages = [sdk.jobs.list(limit=20)]
        while pages[-1].next_cursor is not None:
            pages.append(sdk.jobs.list(limit=20, cursor=pages[-1].next_cursor))
    assert [job["id"] for page in pages for job in page] == [item["id"] for item in everything["items"]]
    assert pages[0].total is None and pages[-1].next_cursor is None and len(pages) == 4


def _tenant_model(session, tenant_id: str) -> str:
    from app.core.tables import ModelSpec

    model = ModelSpec(tenant_id=tenant_id, name="m", spec={}, keras_config={}, summary={})
    session.add(model)
    session.flush()
    return model.id


def test_pages_are_newest_first_and_agree_with_offsets(paging_api, database):
    tenant_id, key = make_tenant("order")
    with database() as session:
        model_id = _tenant_model(session, tenant_id)
        for status in ("succeeded", "failed") * 6:
            _submit(session, tenant_id, model_id, "order", 5, status=status)
    with keyed_client(paging_api, key) as client:
        whole = client.get("/v1/jobs", params={"limit": 100}).json()
        assert whole["total"] == 12 and whole["total_kind"] == "exact" and whole["next"] is None
        stamps = [(item["created_at"], item["id"]) for item in whole["items"]]
        assert stamps == sorted(stamps, reverse=True)
        by_offset = [item["id"] for offset in range(0, 12, 5)
                     for item in client.get("/v1/jobs", params={"limit": 5, "offset": offset}).json()["items"]]
        assert by_offset == [item["id"] for item in whole["items"]]
        failed = client.get("/v1/jobs", params={"limit": 4, "status": "failed"}).json()
        following = client.get(failed["next"]).json()
        assert "status=failed" in failed["next"]
        assert [item["status"] for item in failed["items"] + following["items"]] == ["failed"] * 6
        both = client.get("/v1/jobs", params={"limit": 5, "offset": 5, "cursor": failed["next_cursor"]})
        assert both.status_code == 422


def test_a_tenant_sees_only_its_own_pages(paging_api):
    _tenant, key = make_tenant("alone")
    with keyed_client(paging_api, key) as client:
        assert client.get("/v1/jobs").json() == {"items": [], "limit": 50, "next": None, "next_cursor": None,
                                                 "total": 0, "total_kind": "exact"}
    with httpx.Client(base_url=paging_api) as anonymous:
        assert anonymous.get("/v1/jobs").status_code == 401


def _migrated_with_queued_jobs(url: str) -> None:
    """A database at the schema before lanes with queued jobs (and ended ones) migrates to head: the queued jobs
    get tickets in the order the scheduler served them (priority, then created_at), and positions follow it."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.core.migrate import alembic_config

    command.upgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    start = utcnow() - timedelta(hours=1)
    rng = random.Random(5)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't1', :now)"),
                           {"now": start})
        connection.execute(text("INSERT INTO models (id, tenant_id, name, spec, keras_config, summary, created_at) "
                                "VALUES ('m1', 't1', 'm', '{}', '{}', '{}', :now)"), {"now": start})
        for i in range(300):
            status = "queued" if i % 3 else rng.choice(["succeeded", "running"])
            connection.execute(text(
                "INSERT INTO jobs (id, tenant_id, kind, status, model_id, request, attempt, max_attempts, created_at, "
                "queue, priority) VALUES (:id, 't1', 'fit', :status, 'm1', '{}', 0, 3, :at, 'q', :priority)"),
                {"id": f"{i:032x}", "status": status, "at": start + timedelta(seconds=rng.randrange(3000)),
                 "priority": rng.choice([1, 5, 5, 9])})
    try:
        command.upgrade(alembic_config(url), "head")
        with Session(engine) as session:
            rows = session.execute(text("SELECT id, priority, created_at FROM jobs WHERE status = 'queued'")).all()
            served = [row.id for row in sorted(rows, key=lambda row: (-row.priority, row.created_at, row.id))]
            assert _scheduler_rank(session, "t1", "q") == served
            _check_lanes(session, "t1", "q", served)
            # New jobs come after the migrated ones in their lane.
            newer = _submit(session, "t1", "m1", "q", 9)
            session.commit()
            assert _scheduler_rank(session, "t1", "q")[:sum(1 for r in rows if r.priority == 9) + 1][-1] == newer
    finally:
        engine.dispose()


def test_a_database_with_queued_jobs_migrates_to_lanes_in_the_order_they_were_served(server_env):
    from tests.services import create_database, drop_database

    name = f"kerasd_lanes_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        _migrated_with_queued_jobs(url)
    finally:
        drop_database(name)


def test_a_sqlite_database_with_queued_jobs_migrates_to_lanes_too(tmp_path):
    _migrated_with_queued_jobs(f"sqlite:///{tmp_path / 'kerasd.db'}")
