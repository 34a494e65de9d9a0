"""Request rate per tenant: a token bucket in Redis, shared by every API process.

Each tenant's bucket holds up to `burst` tokens and refills at `rate_per_s`; a request takes one, and one that
finds none is a 429 whose Retry-After says when the next token comes. One Lua script does the read, refill
and take atomically, and in the same round trip reads the API keys' revocation generation (app/tenants/key_cache.py),
so the key cache costs no round trip of its own. If Redis cannot be reached the request goes through (logged):
the limiter protects the service and must not be the reason it is down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from app.core.errors import Problem
from app.tenants.key_cache import GENERATION_KEY, NO_GENERATION

log = logging.getLogger("kerasd.ratelimit")

# KEYS[1] bucket, KEYS[2] the key revocation generation; ARGV rate, burst, now (s).
# Returns {allowed (0/1), seconds until a token (string), generation (string, "" if none)}. A rate of 0 or less
# takes nothing (no limit) but still answers the generation.
TOKEN_BUCKET = """
local generation = redis.call('GET', KEYS[2]) or ''
local rate = tonumber(ARGV[1])
if rate <= 0 then
  return {1, '0', generation}
end
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait), generation}
"""


@dataclass(frozen=True)
class Taken:
    allowed: bool
    wait_s: float
    # The key revocation generation; None when Redis could not be reached (then nothing was limited either).
    generation: str | None


def limiter_client(url: str) -> aioredis.Redis:
    # Short timeouts of its own: a hung Redis must not hang every request behind the limiter.
    return aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


class RateLimiter:
    """One per API process (made in the app's lifespan), on the event loop's own Redis client."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._script = client.register_script(TOKEN_BUCKET)
        self._last_warning = 0.0

    async def take(self, tenant_id: str, *, rate_per_s: float, burst: int) -> Taken:
        try:
            allowed, wait, generation = await self._script(
                keys=[f"kerasd:ratelimit:{tenant_id}", GENERATION_KEY], args=[rate_per_s, max(1, burst), time.time()])
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("rate limiter unavailable (%s); requests are not limited meanwhile, and API keys are "
                            "checked in SQL", exc.__class__.__name__)
            return Taken(True, 0.0, None)
        generation = generation.decode() if isinstance(generation, bytes) else str(generation or NO_GENERATION)
        return Taken(int(allowed) == 1, float(wait), generation)


def too_many(rate_per_s: float, burst: int, wait_s: float) -> Problem:
    retry_after = max(1, math.ceil(wait_s))
    return Problem(429, "Too Many Requests", f"Your tenant's request rate is {rate_per_s:g} a second with bursts of "
                   f"{burst}; wait {retry_after} s (Retry-After) and send the request again.",
                   headers={"Retry-After": str(retry_after)}, retry_after_s=retry_after)
