"""Request rate per tenant: a token bucket in Redis, shared by every API process.

Each tenant's bucket holds up to `burst` tokens and refills at `rate_per_s`; a request takes one, and one that
finds none is a 429 whose Retry-After says when the next token comes. One Lua script does the read, refill
and take atomically. If Redis cannot be reached the request goes through (logged): the limiter protects the
service and must not be the reason it is down.
"""

from __future__ import annotations

import functools
import logging
import math
import time

import redis

from app.problems import Problem
from app.settings import get_settings

log = logging.getLogger("kerasd.ratelimit")

# KEYS[1] bucket; ARGV rate, burst, now (s). Returns {allowed (0/1), seconds until a token (string)}.
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
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
return {allowed, tostring(wait)}
"""


@functools.lru_cache
def _script(url: str):
    # Short timeouts of its own: a hung Redis must not hang every request behind the limiter.
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return client.register_script(TOKEN_BUCKET)


_last_warning = 0.0


def check(tenant_id: str, *, rate_per_s: float, burst: int) -> None:
    """Take one token from the tenant's bucket, or raise a 429 with Retry-After. A rate of 0: no limit."""
    global _last_warning
    if rate_per_s <= 0:
        return
    try:
        allowed, wait = _script(get_settings().redis_url)(keys=[f"kerasd:ratelimit:{tenant_id}"],
                                                          args=[rate_per_s, max(1, burst), time.time()])
    except redis.RedisError as exc:
        if time.monotonic() - _last_warning > 60:
            _last_warning = time.monotonic()
            log.warning("rate limiter unavailable (%s); requests are not limited meanwhile", exc.__class__.__name__)
        return
    if int(allowed) == 1:
        return
    retry_after = max(1, math.ceil(float(wait)))
    raise Problem(429, "Too Many Requests", f"Your tenant's request rate is {rate_per_s:g} a second with bursts of "
                  f"{burst}; wait {retry_after} s (Retry-After) and send the request again.",
                  headers={"Retry-After": str(retry_after)}, retry_after_s=retry_after)
