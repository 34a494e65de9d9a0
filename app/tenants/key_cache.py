"""API keys resolved from a short-lived in-process cache, so a request usually needs no SQL to know its caller.

Why it is safe:
- Entries are keyed by the whole key's sha256, and only keys that SQL accepted (prefix found, hash equal in
  constant time, not revoked) are stored. Finding an entry is a dict look-up by a hash of the full secret: its
  time says nothing about any part of a key an attacker does not already hold.
- An entry is trusted only under the *revocation generation* it was stored under. Revoking a key (`DELETE
  /v1/admin/keys/{id}` or `kerasd admin revoke-key`, in any process) sets a new random generation in Redis
  after its commit (`bump_generation`), and every request reads the generation in the same Redis round trip
  that takes its rate-limit token (app/http/ratelimit.py). So in every API process the first request after a
  revocation finds its generation changed, drops the whole cache and asks SQL again.
- Where the generation cannot be read (Redis away), the cache is not used at all. Entries also expire after
  KERASD_API_KEY_CACHE_S, which bounds how long a key stays usable if Redis was away when it was revoked (its
  generation could not be set then). 0 turns the cache off.

Used from the event loop only (the async `current_caller`), so it needs no lock.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from typing import Generic, TypeVar

import redis

log = logging.getLogger("kerasd.auth")

GENERATION_KEY = "kerasd:auth:generation"
# A generation that no entry is ever stored under: Redis has no generation key yet (fresh, or restarted
# without persistence), which still is one well-defined generation.
NO_GENERATION = ""
# Bound on entries, so a flood of valid keys cannot grow the process (the cache starts over when full).
MAX_ENTRIES = 10_000

T = TypeVar("T")


class KeyCache(Generic[T]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, str, T]] = {}
        # The last generation this process saw in Redis (None: none yet, or Redis unreachable).
        self.generation: str | None = None

    def get(self, digest: str) -> tuple[T, str] | None:
        """(the caller, the generation it was stored under), or None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, generation, value = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return value, generation

    def put(self, digest: str, value: T, generation: str) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        # A random 75-100% of the TTL, so keys cached together are not all looked up in SQL again at once.
        self._entries[digest] = (time.monotonic() + self.ttl_s * (1 - random.random() / 4), generation, value)

    def observe(self, generation: str | None) -> None:
        """Redis answered with this generation (None: it could not be read): a change drops every entry."""
        if generation != self.generation:
            self._entries.clear()
            self.generation = generation

    def __len__(self) -> int:
        return len(self._entries)


def bump_generation(redis_url: str) -> bool:
    """After a revocation's commit: every API process drops its cached keys at its next request. False (and
    logged) if Redis could not be reached; then cached entries end by their TTL."""
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.set(GENERATION_KEY, secrets.token_hex(8))
        finally:
            client.close()
        return True
    except redis.RedisError as exc:
        log.warning("could not announce a key revocation in Redis (%s): API processes may accept the key from "
                    "their caches for up to KERASD_API_KEY_CACHE_S more seconds", exc.__class__.__name__)
        return False
