"""The queue and the job lists at scale: what a claim, a queue position and a page of jobs cost in PostgreSQL
with 10k, 100k and 1M jobs stored, before and after the indexes and queue lanes of migrations 0006-0008, and a
page filtered by a tag and sorted by a metric after migration 0009 (experiments).

For each size a scratch database is made at revision 0005 (the schema before) and filled with synthetic jobs
in SQL: 40% queued (three quarters of one tenant, the rest spread over 49 others; priorities mixed), 60% ended,
skewed the same way, 16 running with a live lease and 4 whose lease expired. `VACUUM ANALYZE` then stands in
for autovacuum. Each statement is timed by PostgreSQL itself (`EXPLAIN (ANALYZE)`, execution time, median of
`--repeat` runs after a warm-up, each in a transaction rolled back, so an UPDATE changes nothing): first the
statements of the code before (written out below as they were), then the database is migrated to head (each
step timed: 0007 holds a write lock while it numbers the queued jobs; 0008 builds its indexes CONCURRENTLY; 0009
gives every job its params, a batch at a time, and builds its indexes CONCURRENTLY), and the statements the code
sends now are timed, taken from the repositories themselves. For the experiments' list, a tenth of the jobs get
the tag `t3` and every ended job a `val_loss` summary, in SQL, after 0009.

Goals at 1M jobs: a claim (every statement of one) <= 2 ms, a queue position <= 1 ms, any list page <= 20 ms;
each grows by less than 2x from 10k to 1M; a page filtered by a tag and sorted by a metric <= 50 ms (the API's
whole answer, bench/compare.py's goal at 10k jobs).

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.services import create_database, drop_database

QUEUE = "kerasd"
TENANTS = 50
OLD_CLAIMABLE = ("(jobs.status = 'queued' OR jobs.status = 'running' AND jobs.lease_expires_at < %(now)s) "
                 "AND jobs.attempt < jobs.max_attempts")
OLD_COLUMNS = ("jobs.id, jobs.tenant_id, jobs.kind, jobs.status, jobs.model_id, jobs.attempt, jobs.max_attempts, "
               "jobs.created_at, jobs.started_at, jobs.finished_at, jobs.error, jobs.cancel_requested_at, "
               "jobs.queue, jobs.request -> 'submitted' AS submitted, jobs.result")
# The code before, statement by statement (workers/scheduling.py, app/jobs/repository.py and app/jobs/service.py
# at revision 0005).
OLD = {
    "claim: tenants with a claimable job": f"SELECT jobs.tenant_id FROM jobs WHERE jobs.queue = %(queue)s AND "
                                           f"{OLD_CLAIMABLE} GROUP BY jobs.tenant_id",
    "claim: the tenant's next jobs": f"SELECT jobs.id FROM jobs WHERE jobs.tenant_id = %(tenant_id)s AND jobs.queue = "
                                     f"%(queue)s AND {OLD_CLAIMABLE} ORDER BY jobs.priority DESC, jobs.created_at, "
                                     "jobs.id LIMIT 5",
    "queue position of the last queued job": "SELECT count(*) FROM jobs WHERE tenant_id = %(tenant_id)s AND queue = "
                                             "%(queue)s AND status = 'queued' AND created_at < %(created_at)s",
    "GET /v1/jobs first page (50)": f"SELECT {OLD_COLUMNS}, count(*) OVER () AS total FROM jobs WHERE jobs.tenant_id "
                                    "= %(tenant_id)s ORDER BY jobs.created_at DESC LIMIT 50 OFFSET 0",
    "GET /v1/jobs a quarter deep": f"SELECT {OLD_COLUMNS}, count(*) OVER () AS total FROM jobs WHERE jobs.tenant_id = "
                                   "%(tenant_id)s ORDER BY jobs.created_at DESC LIMIT 50 OFFSET %(offset)s",
}


def fill(conn: psycopg.Connection, size: int) -> dict[str, Any]:
    """`size` jobs as described above; the names and ids the statements are asked about."""
    tenants = [(f"bench{i:02d}{uuid.uuid4().hex[:24]}", uuid.uuid4().hex) for i in range(TENANTS)]
    now = datetime.now(UTC)
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE bench_tenants (idx int PRIMARY KEY, id text, model_id text)")
        for idx, (tenant_id, model_id) in enumerate(tenants):
            cur.execute("INSERT INTO tenants (id, name, created_at) VALUES (%s, %s, %s)", (tenant_id, tenant_id, now))
            cur.execute("INSERT INTO models (id, tenant_id, name, spec, keras_config, summary, created_at) VALUES "
                        "(%s, %s, 'm', '{}', '{}', '{}', %s)", (model_id, tenant_id, now))
            cur.execute("INSERT INTO bench_tenants VALUES (%s, %s, %s)", (idx, tenant_id, model_id))
        ended, queued = int(size * 0.6), size - int(size * 0.6)
        # One job a millisecond, the ended ones first: the queue holds the newest jobs.
        start = now - timedelta(milliseconds=size + 60_000)
        insert = ("INSERT INTO jobs (id, tenant_id, kind, status, model_id, request, attempt, max_attempts, "
                  "created_at, started_at, finished_at, result, queue, priority) "
                  "SELECT md5(%(seed)s || g::text), t.id, 'fit', {status}, t.model_id, "
                  "'{{\"submitted\": {{\"kind\": \"fit\", \"fit\": {{\"epochs\": 10}}}}, \"queue\": \"kerasd\"}}', "
                  "{attempt}, 3, %(start)s + g * interval '1 millisecond', {started}, {started}, {result}, "
                  "%(queue)s, (ARRAY[0, 3, 5, 5, 5, 5, 5, 7, 9, 5])[1 + (g * 7) %% 10] "
                  "FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g JOIN bench_tenants AS t "
                  "ON t.idx = CASE WHEN g %% 4 <> 0 THEN 0 ELSE 1 + (g / 4) %% 49 END")
        cur.execute(insert.format(status="(ARRAY['succeeded', 'succeeded', 'succeeded', 'failed', 'cancelled'])"
                                         "[1 + g %% 5]", attempt=1, started="%(start)s + g * interval '1 millisecond'",
                                  result="'{\"loss\": 0.1}'"),
                    {"seed": "e", "start": start, "first": 0, "last": ended - 1, "queue": QUEUE})
        cur.execute(insert.format(status="'queued'", attempt=0, started="NULL", result="NULL"),
                    {"seed": "q", "start": start, "first": ended, "last": size - 1, "queue": QUEUE})
        # Running jobs of the small tenants: 16 with a live lease, 4 whose worker was lost.
        cur.execute("UPDATE jobs SET status = 'running', attempt = 1, started_at = %(now)s, lease_owner = 'w', "
                    "lease_expires_at = %(now)s + CASE WHEN rn <= 16 THEN interval '10 minutes' "
                    "ELSE interval '-10 minutes' END FROM (SELECT j.id AS rid, row_number() OVER () AS rn "
                    "FROM jobs AS j WHERE j.status = 'queued' AND j.tenant_id <> %(big)s LIMIT 20) AS r "
                    "WHERE jobs.id = r.rid", {"now": now, "big": tenants[0][0]})
    conn.commit()
    big = tenants[0][0]
    with conn.cursor(row_factory=namedtuple_row) as cur:
        newest_queued = cur.execute("SELECT id, created_at FROM jobs WHERE tenant_id = %s AND status = 'queued' "
                                    "ORDER BY created_at DESC LIMIT 1", (big,)).fetchone()
        mine = cur.execute("SELECT count(*) FROM jobs WHERE tenant_id = %s", (big,)).fetchone()[0]
        running = cur.execute("SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at > now() "
                              "LIMIT 1").fetchone()[0]
    conn.commit()
    return {"big": big, "queued": queued, "newest_queued": newest_queued, "tenant_jobs": mine, "running": running}


def upgrade_timed(url: str, conninfo: str, revision: str, running_job: str) -> tuple[float, float]:
    """(seconds the migration step took, the longest a worker's lease renewal, a write to jobs sent every 10 ms
    meanwhile, waited)."""
    from alembic import command

    from app.core.migrate import alembic_config

    stop = threading.Event()
    longest = [0.0]

    def renew() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                began = time.monotonic()
                conn.execute("UPDATE jobs SET lease_expires_at = now() + interval '10 minutes' WHERE id = %s",
                             (running_job,))
                longest[0] = max(longest[0], time.monotonic() - began)
                time.sleep(0.01)

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    began = time.monotonic()
    command.upgrade(alembic_config(url), revision)
    took = time.monotonic() - began
    stop.set()
    thread.join()
    return took, longest[0]


def explain(conn: psycopg.Connection, sql: str, params: dict[str, Any], repeat: int) -> float:
    """Median execution time in ms (triggers included), each run in a transaction rolled back."""
    times = []
    for run in range(repeat + 1):
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()[0]
        conn.rollback()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        if run:  # the first run warms the cache
            times.append(plan[0]["Execution Time"])
    return statistics.median(times)


def psycopg_sql(question: Any) -> tuple[str, dict[str, Any]]:
    """A repository question as the SQL and parameters psycopg gets (expanding IN lists rendered for them)."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    compiled = question.statement.clause("postgresql").compile(dialect=PGDialect_psycopg())
    state = compiled.construct_expanded_state(dict(question.params))
    return state.statement, dict(state.parameters)


def new_statements(conn: psycopg.Connection, facts: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The statements the code sends now, with the parameters of the worst cases."""
    from app.core.repositories import jobs, tenants
    from app.jobs import repository

    now = datetime.now(UTC)
    big = facts["big"]
    with conn.cursor(row_factory=namedtuple_row) as cur:
        last = cur.execute("SELECT id FROM jobs WHERE tenant_id = %s AND status = 'queued' ORDER BY priority, "
                           "queue_ticket DESC LIMIT 1", (big,)).fetchone().id
        head = cur.execute("SELECT id FROM jobs WHERE tenant_id = %s AND queue = %s AND status = 'queued' ORDER BY "
                           "priority DESC, queue_ticket LIMIT 1", (big, QUEUE)).fetchone().id
        waiting = [row[0] for row in cur.execute("SELECT DISTINCT tenant_id FROM jobs WHERE status = 'queued'")]
        deep = cur.execute("SELECT created_at, id FROM jobs WHERE tenant_id = %s ORDER BY created_at DESC, id DESC "
                           "OFFSET %s LIMIT 1", (big, facts["tenant_jobs"] // 4)).fetchone()
        deep_queued = cur.execute("SELECT created_at, id FROM jobs WHERE tenant_id = %s AND status = 'queued' ORDER BY "
                                  "created_at DESC, id DESC OFFSET %s LIMIT 1", (big, facts["queued"] // 4)).fetchone()
    conn.commit()
    page = {"tenant_id": big, "model_id": None, "limit": 50}
    claim = {
        "claim: tenants with a job waiting": jobs.waiting_tenants(queue=QUEUE, now=now),
        "claim: running jobs per tenant": jobs.running_by_tenant(now=now),
        "claim: the waiting tenants' rows": tenants.scheduling_rows(tenant_ids=waiting),
        "claim: lock the tenant's row": _question(tenants._LOCK, tenant_id=big),
        "claim: the tenant's running jobs": jobs.running_of_tenant(tenant_id=big, now=now),
        "claim: the tenant's expired leases": _question(jobs._EXPIRED_OF_TENANT, tenant_id=big, queue=QUEUE, now=now,
                                                        limit=5),
        "claim: the tenant's next jobs": _question(jobs._NEXT_QUEUED, tenant_id=big, queue=QUEUE, limit=5),
        "claim: take the job (UPDATE, trigger)": _question(jobs._TAKE, job_id=head, owner="w", now=now,
                                                           until=now + timedelta(minutes=2)),
        "claim: the tenant served now": _question(tenants._MARK_CLAIMED, tenant_id=big, now=now),
    }
    reads = {
        "queue position of the last queued job (GET /v1/jobs/{id})": repository.job_document(tenant_id=big,
                                                                                            job_id=last),
        "GET /v1/jobs first page (50)": repository.job_page(**page, status=None),
        "GET /v1/jobs a quarter deep (cursor)": repository.job_page(**page, status=None, after=tuple(deep)),
        "GET /v1/jobs?status=queued first page (50 positions)": repository.job_page(**page, status="queued"),
        "GET /v1/jobs?status=queued a quarter deep": repository.job_page(**page, status="queued",
                                                                         after=tuple(deep_queued)),
        "the queued-jobs quota (a submission)": jobs.queued_of_tenant(tenant_id=big),
        "the reaper's expired leases": jobs.expired_leases(now=now),
        "the turn keeper's claimable jobs per queue": jobs.claimable_by_queue(now=now),
        **experiment_pages(conn, big),
    }
    statements = {name: psycopg_sql(question) for name, question in {**claim, **reads}.items()}
    statements["GET /v1/jobs?total=exact (counted: grows, only when asked)"] = psycopg_sql(
        repository.job_count(tenant_id=big, status=None, model_id=None, estimate=False))
    return statements


def tag_and_measure(conn: psycopg.Connection) -> None:
    """A tenth of the jobs tagged `t3` (the others t0..t9), and a `val_loss` summary for every ended job."""
    conn.execute("INSERT INTO job_tags (job_id, tenant_id, tag) SELECT id, tenant_id, 't' || (abs(hashtext(id)) % 10) "
                 "FROM jobs")
    conn.execute("INSERT INTO job_metrics (job_id, tenant_id, name, final, best, best_epoch, last_epoch) SELECT id, "
                 "tenant_id, 'val_loss', random(), random(), 3, 9 FROM jobs WHERE status IN ('succeeded', 'failed', "
                 "'cancelled')")
    conn.commit()


def experiment_pages(conn: psycopg.Connection, tenant_id: str) -> dict[str, Any]:
    """GET /v1/jobs?tag=t3&sort=-metrics.val_loss.best: its first page, and the page after the first."""
    from app.jobs import listing

    filters = listing.Filters(tenant_id, tags=("t3",))
    order = listing.Sort.parse("-metrics.val_loss.best")
    first = listing.page(filters, order, limit=50)
    with conn.cursor(row_factory=namedtuple_row) as cur:
        _items, after = first.shape(cur.execute(*psycopg_sql(first)).fetchall())
    conn.commit()
    return {"GET /v1/jobs?tag=t3&sort=-metrics.val_loss.best first page": listing.page(filters, order, limit=50),
            "GET /v1/jobs?tag=t3&sort=-metrics.val_loss.best second page": listing.page(filters, order, limit=50,
                                                                                        after=after)}


def _question(statement: Any, **params: Any) -> Any:
    from app.core.sql import Question

    return Question(statement, params)


def plan_ms(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> float:
    """Planning time of EXPLAIN alone: what `?total=estimate` costs."""
    plan = conn.execute("EXPLAIN (SUMMARY, FORMAT JSON) " + sql, params).fetchone()[0]
    conn.rollback()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Planning Time"]


def measure_size(size: int, repeat: int) -> dict[str, dict[str, float]]:
    from alembic import command

    from app.core.migrate import alembic_config

    name = f"kerasd_scale_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        command.upgrade(alembic_config(url), "0005")
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo) as conn:
            began = time.monotonic()
            facts = fill(conn, size)
            print(f"{size:,} jobs: filled in {time.monotonic() - began:.0f} s", flush=True)
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            conn.autocommit = False
            params = {"queue": QUEUE, "now": datetime.now(UTC), "tenant_id": facts["big"],
                      "created_at": facts["newest_queued"].created_at, "offset": facts["tenant_jobs"] // 4}
            before = {label: explain(conn, sql, params, repeat) for label, sql in OLD.items()}
        steps = {}
        for revision in ("0006", "0007", "0008", "0009"):
            took, held = upgrade_timed(url, conninfo, revision, facts["running"])
            steps[f"migration {revision} (s)"] = took
            steps[f"migration {revision}: the longest write to jobs waited (s)"] = held
        with psycopg.connect(conninfo) as conn:
            tag_and_measure(conn)
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            conn.autocommit = False
            after = {label: explain(conn, sql, params, repeat)
                     for label, (sql, params) in new_statements(conn, facts).items()}
            # `?total=estimate` is a plan of the count, nothing read: its planning time.
            after["GET /v1/jobs?total=estimate (the estimate)"] = plan_ms(
                conn, "SELECT 1 FROM jobs WHERE jobs.tenant_id = %(tenant_id)s", {"tenant_id": facts["big"]})
        return {"before": before, "after": after, "migration": steps}
    finally:
        drop_database(name)


def report(results: dict[int, dict[str, dict[str, float]]]) -> None:
    sizes = sorted(results)
    head = " | ".join(f"{size:,} jobs" for size in sizes)
    for part, unit in (("before", "ms"), ("after", "ms"), ("migration", "s")):
        print(f"\n== {part} ({unit}) ==\n| statement | {head} | {sizes[-1]:,} / {sizes[0]:,} |")
        for label in results[sizes[0]][part]:
            values = [results[size][part][label] for size in sizes]
            growth = values[-1] / values[0] if values[0] else float("inf")
            print(f"| {label} | " + " | ".join(f"{value:.3f}" for value in values) + f" | {growth:.1f}x |")
    after = results[sizes[-1]]["after"]
    claim = sum(value for label, value in after.items() if label.startswith("claim:"))
    claim_first = sum(value for label, value in results[sizes[0]]["after"].items() if label.startswith("claim:"))
    position = after["queue position of the last queued job (GET /v1/jobs/{id})"]
    pages = {label: value for label, value in after.items()
             if label.startswith("GET /v1/jobs") and "exact" not in label and "tag=" not in label}
    tagged = max(value for label, value in after.items() if "tag=" in label)
    print(f"\nat {sizes[-1]:,} jobs: a claim {claim:.3f} ms (goal <= 2; {claim / claim_first:.1f}x of "
          f"{sizes[0]:,}), a queue position {position:.3f} ms (goal <= 1), the slowest page "
          f"{max(pages.values()):.3f} ms (goal <= 20), a page by tag and metric {tagged:.3f} ms in PostgreSQL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        results[size] = measure_size(size, args.repeat)
    report(results)


if __name__ == "__main__":
    main()
