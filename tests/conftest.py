"""Session fixtures: a fresh PostgreSQL database, the real Redis, a real Celery worker and the real API."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from tests.seed import seed_arrays, upload_seed
from tests.services import REDIS_URL, Process, create_database, drop_database, running_api, running_worker


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def database_url(run_id: str) -> Iterator[str]:
    from app.core.migrate import upgrade_to_head

    name = f"kerasd_test_{run_id}"
    url = create_database(name)
    upgrade_to_head(url)
    yield url
    from app.core.database import get_engine

    get_engine().dispose()
    drop_database(name)


@pytest.fixture(scope="session")
def server_env(run_id: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    redis.Redis.from_url(REDIS_URL).ping()
    env = {
        **os.environ,
        "KERASD_DATABASE_URL": database_url,
        "KERASD_REDIS_URL": REDIS_URL,
        # A queue of this run's own, so no other worker on the machine takes these jobs.
        "KERASD_QUEUE": f"kerasd-test-{run_id}",
        "KERASD_DATA_DIR": str(tmp_path_factory.mktemp("kerasd-data")),
        "KERASD_BATCH_EVENT_INTERVAL_S": "0.1",
        # Webhook receivers in the tests listen on 127.0.0.1; retries come quickly.
        "KERASD_WEBHOOK_ALLOW_PRIVATE": "true",
        "KERASD_WEBHOOK_BACKOFF_S": "0.2",
        "KERASD_WEBHOOK_BACKOFF_MAX_S": "1",
        "KERASD_WEBHOOK_POLL_S": "0.5",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # Every test presents its bad keys from 127.0.0.1 to the session's APIs: the per-address limit on failed
        # authentications would refuse later tests' keys. tests/test_abuse_io.py tests it on an API of its own.
        "KERASD_AUTH_FAILURE_BURST": "1000000",
    }
    # The test process reads SQL directly to check that bad input stored nothing.
    os.environ.update({k: v for k, v in env.items() if k.startswith("KERASD_")})
    from app.core.database import get_engine, get_sessionmaker
    from app.core.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
    return env


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def worker(server_env: dict[str, str], run_id: str, logs_dir: Path) -> Iterator[Process]:
    with running_worker(server_env, logs_dir / "worker.log", "--name", f"test-{run_id}@%h") as process:
        yield process
    print(f"\n--- worker log (tail) ---\n{process.log_text()[-3000:]}")


@pytest.fixture(scope="session")
def api_url(server_env: dict[str, str], worker: Process, logs_dir: Path) -> Iterator[str]:
    with running_api(server_env, logs_dir / "api.log") as (url, _process):
        yield url


@pytest.fixture()
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def seed_data() -> dict[str, np.ndarray]:
    """The seed's arrays (`tests.seed.seed_arrays()`), for a module that compares its jobs with plain Keras."""
    return seed_arrays()


@pytest.fixture(scope="module")
def ids(api_url: str, seed_data: dict[str, np.ndarray]) -> dict[str, str]:
    """`seed_data` and the seed's model uploaded once a module: {"dataset": id, "model": id}. A module with an
    `ids` of its own uses that one."""
    return upload_seed(api_url, seed_data)


@pytest.fixture(scope="session")
def keyed_env(server_env: dict[str, str], run_id: str) -> dict[str, str]:
    """The session's database and Redis, keys required on every /v1 request, a queue of its own."""
    return {
        **server_env,
        "KERASD_AUTH": "required",
        "KERASD_QUEUE": f"kerasd-keyed-{run_id}",
        "KERASD_CHECKPOINT_EVERY_EPOCHS": "0",
        "KERASD_SCHEDULER_RETRY_S": "0.5",
    }


@pytest.fixture(scope="session")
def keyed_worker(keyed_env: dict[str, str], run_id: str, logs_dir: Path) -> Iterator[Process]:
    with running_worker(
        keyed_env, logs_dir / "keyed-worker.log", "--gpus", "none", "--name", f"keyed-{run_id}@%h"
    ) as process:
        yield process


@pytest.fixture(scope="session")
def keyed_api(keyed_env: dict[str, str], keyed_worker: Process, logs_dir: Path) -> Iterator[tuple[str, Process]]:
    """(URL, process) of an API that requires keys (tests/tenancy.py makes tenants and keys), with a worker."""
    with running_api(keyed_env, logs_dir / "keyed-api.log") as found:
        yield found
