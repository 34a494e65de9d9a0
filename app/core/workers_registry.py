"""Workers announce themselves in one Redis hash; the API reads who is alive for /version and /ready."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

WORKERS_KEY = "kerasd:workers"
ANNOUNCE_EVERY_S = 10
STALE_AFTER_S = 3 * ANNOUNCE_EVERY_S


def announce(client: redis.Redis, name: str, info: dict[str, Any]) -> None:
    client.hset(WORKERS_KEY, name, json.dumps({**info, "name": name, "last_seen": time.time()}))


def withdraw(client: redis.Redis, name: str) -> None:
    client.hdel(WORKERS_KEY, name)


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    now = time.time()
    workers = [json.loads(raw) for raw in client.hvals(WORKERS_KEY)]
    return sorted((w for w in workers if now - w.get("last_seen", 0) < STALE_AFTER_S), key=lambda w: w["name"])
