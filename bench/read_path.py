"""What the event loop spends on one read of the API's hottest question, `GET /v1/jobs/{id}` (the job with three
epochs, built into its JSON answer), by the executor that runs it: the hand-made pool of app/core/read_pool.py,
psycopg_pool's AsyncConnectionPool, SQLAlchemy's async engine (the same statement through its Core), and a
session in a worker thread (the synchronous path SQLite still takes).

In one process, against a scratch PostgreSQL database on this machine: `--tasks` reads at a time on one event
loop, `--reads` each, the executors in turn for `--rounds` rounds; CPU is this process's (the loop's and its
threads'), so other load on the machine moves it less than it moves reads a second. Printed: CPU microseconds
a read and reads a second, medians with their ranges, and each library's CPU a read over the hand-made pool's.

    .venv/bin/python bench/read_path.py [--rounds 5] [--tasks 16] [--reads 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import scratch_database
from bench._jobs import median_range


def seed(database_url: str) -> tuple[str, str]:
    """A tenant's finished job with three epochs of history, as bench/api_load.py reads them."""
    os.environ["KERASD_DATABASE_URL"] = database_url
    from app.core.database import get_engine, get_sessionmaker, session_scope
    from app.core.settings import get_settings
    from app.core.tables import EpochLog, Job, ModelSpec, Tenant

    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()
    with session_scope() as session:
        tenant = Tenant(name="reads")
        session.add(tenant)
        session.flush()
        model = ModelSpec(tenant_id=tenant.id, name="m", spec={}, keras_config={}, summary={})
        session.add(model)
        session.flush()
        job = Job(tenant_id=tenant.id, kind="fit", status="succeeded", model_id=model.id, queue="q", attempt=1,
                  request={"submitted": {"model_id": model.id, "fit": {"epochs": 3}}}, result={"loss": 0.1})
        session.add(job)
        session.flush()
        for epoch in range(3):
            session.add(EpochLog(job_id=job.id, epoch=epoch, attempt=1, logs={"loss": 0.5, "accuracy": 0.7}))
        return tenant.id, job.id


async def rounds(database_url: str, tenant_id: str, job_id: str, args: argparse.Namespace) -> dict[str, list]:
    import psycopg_pool
    from psycopg.rows import namedtuple_row
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.database import get_read_sessionmaker, run_sql
    from app.core.read_pool import POOL_SIZE, ReadPool, conninfo
    from app.core.sql import ask, ask_async
    from app.jobs import repository

    question = repository.job_document(tenant_id=tenant_id, job_id=job_id)
    hand = ReadPool(conninfo(database_url))
    library = psycopg_pool.AsyncConnectionPool(conninfo(database_url), min_size=1, max_size=POOL_SIZE, open=False,
                                               kwargs={"autocommit": True, "row_factory": namedtuple_row})
    await library.open()
    engine = create_async_engine(database_url, pool_size=POOL_SIZE, max_overflow=0, isolation_level="AUTOCOMMIT")
    clause = question.statement.clause("postgresql")

    async def with_library() -> bytes:
        async with library.connection() as connection:
            return (await ask_async(connection, question)).model_dump_json().encode()

    async def with_sqlalchemy() -> bytes:
        async with engine.connect() as connection:
            rows = (await connection.execute(clause, dict(question.params))).all()
        return question.shape(rows).model_dump_json().encode()

    def in_thread() -> bytes:
        with get_read_sessionmaker()() as session:
            return ask(session, question).model_dump_json().encode()

    executors = {
        "hand-made pool (app/core/read_pool.py)": lambda: _json(hand.ask(question)),
        "psycopg_pool.AsyncConnectionPool": with_library,
        "SQLAlchemy async engine": with_sqlalchemy,
        "session in a worker thread": lambda: run_sql(in_thread),
    }
    answers = {name: await read() for name, read in executors.items()}
    assert len(set(answers.values())) == 1, "the executors answered differently"
    results: dict[str, list] = {name: [] for name in executors}
    for _ in range(args.rounds):
        for name, read in executors.items():
            async def task(read=read) -> None:
                for _ in range(args.reads):
                    await read()
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(task() for _ in range(args.tasks)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            reads = args.tasks * args.reads
            results[name].append((cpu / reads * 1e6, reads / wall))
    await hand.close()
    await library.close()
    await engine.dispose()
    return results


async def _json(answer) -> bytes:
    return (await answer).model_dump_json().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.1f}", flush=True)
    with scratch_database() as database_url:
        tenant_id, job_id = seed(database_url)
        results = asyncio.run(rounds(database_url, tenant_id, job_id, args))
    base = statistics.median(cpu for cpu, _ in next(iter(results.values())))
    for name, runs in results.items():
        cpu = [c for c, _ in runs]
        print(f"{name}: CPU {median_range(cpu, 0)} us a read ({statistics.median(cpu) / base:.2f}x the hand-made "
              f"pool's); {median_range([r for _, r in runs], 0)} reads/s")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
