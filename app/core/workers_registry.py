"""Workers announce themselves in one Redis hash; the API reads who is alive for /version and /ready, and which
Keras backends have been seen on a queue (kept after their workers stop) to refuse a job no worker could run."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

WORKERS_KEY = "kerasd:workers"
ANNOUNCE_EVERY_S = 10
STALE_AFTER_S = 3 * ANNOUNCE_EVERY_S


def backends_key(queue: str) -> str:
    """{backend: {"last_seen", "tensorflow"}} of the workers seen on the base queue `queue`."""
    return f"kerasd:backends:{queue}"


def announce(client: redis.Redis, name: str, info: dict[str, Any]) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.hset(WORKERS_KEY, name, json.dumps({**info, "name": name, "last_seen": now}))
    if info.get("backend") and info.get("queue"):
        pipe.hset(backends_key(info["queue"]), info["backend"],
                  json.dumps({"last_seen": now, "tensorflow": info.get("tensorflow")}))
    pipe.execute()


def withdraw(client: redis.Redis, name: str) -> None:
    client.hdel(WORKERS_KEY, name)


def alive(raw_values: list[Any], now: float | None = None) -> list[dict[str, Any]]:
    """The entries of WORKERS_KEY (its raw values) announced recently enough, by name."""
    now = time.time() if now is None else now
    workers = [json.loads(raw) for raw in raw_values]
    return sorted((w for w in workers if now - w.get("last_seen", 0) < STALE_AFTER_S), key=lambda w: w["name"])


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    return alive(client.hvals(WORKERS_KEY))


def backends_seen(client: redis.Redis, queue: str) -> dict[str, bool]:
    """{backend: whether a worker of it with TensorFlow importable was seen} over every worker ever announced on
    the base queue `queue` (workers from before the record are read from the live ones)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(backends_key(queue))
    pipe.hvals(WORKERS_KEY)
    recorded, workers = pipe.execute()  # one round trip: every submission asks
    seen: dict[str, bool] = {}
    for backend, raw in recorded.items():
        seen[backend.decode() if isinstance(backend, bytes) else backend] = bool(json.loads(raw).get("tensorflow"))
    for worker in alive(workers):
        if worker.get("queue") == queue and worker.get("backend"):
            seen[worker["backend"]] = seen.get(worker["backend"], False) or bool(worker.get("tensorflow"))
    return seen
