"""Finding and comparing runs at scale: a list filtered by a tag and sorted by a metric over 10,000 jobs, and the
comparison of 500 runs of 100 epochs and 20 metrics each.

A scratch PostgreSQL database is filled through the repositories, as the API stores a submission and the worker
records epochs (the metric summaries come from the worker's own code): `--jobs` finished jobs of one tenant, each
with params (optimizer, learning rate, batch size, seed), tags (`all`, one of `t0`..`t9`: a tenth of the jobs
each) and `--metrics` metrics (half of them `val_`). `--runs` of them, tagged `compare`, have `--epochs` epochs
recorded one by one (`record_epoch`); the others have their summaries stored from three epochs' values
(`store_metrics`), without epoch rows (a list never reads them). Then `kerasd api` runs against it (its access
log at warning, the tenant's request rate unlimited) and one client on this machine asks, one request at a time:

1. `GET /v1/jobs?tag=tN&sort=[-]metrics.<name>.best|final&limit=50`: `--requests` first pages, tag, metric, field
   and direction changing with each; then the pages after them (following `next`). Goal: p99 <= 50 ms.
   Also the same question timed inside PostgreSQL (EXPLAIN ANALYZE's execution time), to tell the database's part,
   and for reference `GET /v1/jobs?limit=50` (newest first, unfiltered: the list as it was before experiments).
2. `GET /v1/jobs/compare?ids=<the 500 runs>`: `--repeat` times, the time until the whole answer has arrived,
   and separately the client's JSON decoding of it. Goal: <= 1 s.

Latencies on a shared machine grow with its load; so each part also prints the CPU a request cost the API's
process and PostgreSQL's backends (from /proc: what one request takes of a core, whatever else runs), and the
load average it ran under. The measures start once the API's spec-checker processes have finished starting
(they import TensorFlow, seconds of CPU that would otherwise be counted and compete).

    .venv/bin/python bench/compare.py [--jobs 10000] [--runs 500] [--epochs 100] [--metrics 20] [--requests 400]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import api_process, scratch_database, server_env
from bench._jobs import cpu_seconds, tree_cpu_seconds

BASE_METRICS = ("loss", "accuracy", "auc", "precision", "recall", "mae", "mse", "top_k_accuracy", "f1_score",
                "kl_divergence")


def metric_names(count: int) -> list[str]:
    bases = [*BASE_METRICS, *[f"metric_{index:02d}" for index in range(len(BASE_METRICS), count)]][:(count + 1) // 2]
    return [name for base in bases for name in (base, f"val_{base}")][:count]


def fill(database_url: str, args: argparse.Namespace) -> tuple[list[str], float]:
    """The jobs described above; (the compared runs' ids, seconds it took)."""
    os.environ["KERASD_DATABASE_URL"] = database_url
    from app.core import run_metrics
    from app.core.database import get_engine, get_sessionmaker, session_scope
    from app.core.repositories import jobs as worker_questions
    from app.core.settings import get_settings
    from app.core.tables import DEFAULT_TENANT_ID
    from tests.runs import insert_run, model_of

    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()
    rng = random.Random(16)
    names = metric_names(args.metrics)
    every = max(1, args.jobs // args.runs)
    compared: list[str] = []
    started = time.perf_counter()
    with session_scope() as session:
        model_id = model_of(session, DEFAULT_TENANT_ID)
    for first in range(0, args.jobs, 200):
        with session_scope() as session:
            for index in range(first, min(first + 200, args.jobs)):
                is_run = index % every == 0 and len(compared) < args.runs
                params = {"optimizer": rng.choice(["Adam", "SGD", "RMSprop"]),
                          "optimizer.learning_rate": rng.choice([1e-4, 3e-4, 1e-3, 3e-3, 1e-2]),
                          "fit.batch_size": rng.choice([32, 64, 128]), "seed": index}
                tags = ["all", f"t{index % 10}", *(["compare"] if is_run else [])]
                job_id = insert_run(session, DEFAULT_TENANT_ID, model_id, name=f"run-{index:05d}", tags=tags,
                                    params=params)
                epochs = args.epochs if is_run else 3
                history = [{name: rng.random() for name in names} for _ in range(epochs)]
                if is_run:
                    compared.append(job_id)
                    for epoch, logs in enumerate(history):
                        worker_questions.record_epoch(session, job_id=job_id, epoch=epoch, attempt=1, logs=logs)
                else:
                    worker_questions.store_metrics(session, job_id=job_id,
                                                   summaries=run_metrics.summarize(enumerate(history)))
        print(f"\r  {min(first + 200, args.jobs):,} jobs stored", end="", flush=True)
    # As autovacuum would have by now: statistics, and the visibility map that lets index-only scans skip the table.
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    print()
    return compared, time.perf_counter() - started


def postgres_cpu(database_url: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to this database (the API's), from /proc."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                                               "pg_backend_pid()", (url.database,))]
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # a backend that ended meanwhile
            pass
    return total


def settled(api_pid: int, timeout_s: float = 300) -> None:
    """Wait until the API's child processes (the spec checker's, importing TensorFlow) stop using CPU."""
    deadline = time.monotonic() + timeout_s
    last = tree_cpu_seconds(api_pid) - cpu_seconds(api_pid)
    while time.monotonic() < deadline:
        time.sleep(3)
        now = tree_cpu_seconds(api_pid) - cpu_seconds(api_pid)
        if now - last < 0.05:
            return
        last = now


class CpuMeter:
    """CPU the API's process and the database's backends spent while a block ran, per request."""

    def __init__(self, api_pid: int, database_url: str) -> None:
        self.api_pid, self.database_url = api_pid, database_url

    def __enter__(self) -> CpuMeter:
        self.start = (cpu_seconds(self.api_pid), postgres_cpu(self.database_url), os.getloadavg()[0])
        return self

    def __exit__(self, *_exc: object) -> None:
        self.end = (cpu_seconds(self.api_pid), postgres_cpu(self.database_url), os.getloadavg()[0])

    def per_request(self, count: int) -> str:
        api, database = ((self.end[i] - self.start[i]) / count * 1000 for i in (0, 1))
        return (f"CPU a request: the API {api:.1f} ms, PostgreSQL {database:.1f} ms (load average "
                f"{self.start[2]:.1f} -> {self.end[2]:.1f})")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.5) * 1000:.1f} ms, p99 {percentile(values, 0.99) * 1000:.1f} ms, "
            f"max {max(values) * 1000:.1f} ms (n={len(values)})")


def database_times(args: argparse.Namespace, names: list[str]) -> list[float]:
    """The page question's execution time inside PostgreSQL (EXPLAIN ANALYZE), as the API sends it."""
    from sqlalchemy import text

    from app.core.database import session_scope
    from app.core.tables import DEFAULT_TENANT_ID
    from app.jobs import listing

    times = []
    with session_scope() as session:
        for index in range(50):
            sort = listing.Sort.parse(f"{'-' * (index % 2)}metrics.{names[index % len(names)]}.best")
            question = listing.page(listing.Filters(DEFAULT_TENANT_ID, tags=(f"t{index % 10}",)), sort, limit=50)
            clause = question.statement.clause("postgresql")
            plan = session.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + str(clause.compile())),
                                   dict(question.params)).scalar()
            times.append(plan[0]["Execution Time"] / 1000)
    return times


def lists(client: httpx.Client, args: argparse.Namespace, names: list[str]) -> tuple[list[float], list[float]]:
    first, later = [], []
    for index in range(args.requests + 20):
        sign = "-" if index % 2 else ""
        sort = f"{sign}metrics.{names[index % len(names)]}.{('best', 'final')[index // 2 % 2]}"
        start = time.perf_counter()
        response = client.get("/v1/jobs", params={"tag": f"t{index % 10}", "sort": sort, "limit": 50})
        elapsed = time.perf_counter() - start
        page = response.json()
        assert response.status_code == 200 and len(page["items"]) == min(50, args.jobs // 10), response.text[:500]
        if index >= 20:  # the first ones warm the API's statements and PostgreSQL's caches
            first.append(elapsed)
            if index % 4 == 0 and page["next"]:
                start = time.perf_counter()
                following = client.get(page["next"])
                later.append(time.perf_counter() - start)
                assert following.status_code == 200, following.text[:500]
    return first, later


def newest_first(client: httpx.Client, count: int) -> list[float]:
    times = []
    for index in range(count + 20):
        start = time.perf_counter()
        response = client.get("/v1/jobs", params={"limit": 50})
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.text[:500]
        if index >= 20:
            times.append(elapsed)
    return times


def comparisons(client: httpx.Client, ids: list[str], repeat: int) -> tuple[list[float], list[float], int]:
    import json

    whole, decode, size = [], [], 0
    for index in range(repeat + 1):
        start = time.perf_counter()
        response = client.get("/v1/jobs/compare", params={"ids": ",".join(ids)})
        body = response.content
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.text[:500]
        start = time.perf_counter()
        document = json.loads(body)
        decoded = time.perf_counter() - start
        assert len(document["runs"]) == len(ids)
        if index:  # the first warms up
            whole.append(elapsed)
            decode.append(decoded)
            size = len(body)
    return whole, decode, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    names = metric_names(args.metrics)
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as scratch:
        print(f"filling: {args.jobs:,} jobs, {args.runs} of them with {args.epochs} epochs of {args.metrics} metrics")
        ids, seconds = fill(database_url, args)
        print(f"  took {seconds:.0f} s")
        in_database = database_times(args, names)
        env = server_env(database_url, Path(scratch), KERASD_REQUESTS_PER_S_PER_TENANT="1000000",
                         KERASD_REQUEST_BURST_PER_TENANT="1000000")
        with api_process(env, Path(scratch)) as (process, url), httpx.Client(base_url=url, timeout=60) as client:
            settled(process.popen.pid)
            with CpuMeter(process.popen.pid, database_url) as reference_cpu:
                reference = newest_first(client, args.requests // 2)
            with CpuMeter(process.popen.pid, database_url) as list_cpu:
                first, later = lists(client, args, names)
            with CpuMeter(process.popen.pid, database_url) as compare_cpu:
                whole, decode, size = comparisons(client, ids, args.repeat)
    share = 1 / 10
    print(f"\nGET /v1/jobs?tag=tN&sort=[-]metrics.<name>.best|final&limit=50 over {args.jobs:,} jobs "
          f"({share:.0%} with the tag):")
    print(f"  first pages:  {latency(first)}   goal: p99 <= 50 ms")
    if later:
        print(f"  next pages:   {latency(later)}")
    print(f"  in PostgreSQL (EXPLAIN ANALYZE, first pages): {latency(in_database)}")
    print(f"  {list_cpu.per_request(len(first) + len(later) + 20)}")
    print(f"  for reference, GET /v1/jobs?limit=50 (newest first): {latency(reference)}")
    print(f"  {reference_cpu.per_request(len(reference) + 20)}")
    print(f"GET /v1/jobs/compare of {len(ids)} runs ({args.epochs} epochs x {args.metrics} metrics, "
          f"{size / 1e6:.1f} MB of JSON):")
    print(f"  until the whole answer arrived: median {statistics.median(whole):.3f} s "
          f"(range {min(whole):.3f}-{max(whole):.3f}, n={len(whole)})   goal: <= 1 s")
    print(f"  the client's json.loads of it:  median {statistics.median(decode):.3f} s")
    print(f"  {compare_cpu.per_request(len(whole) + 1)}")


if __name__ == "__main__":
    main()
