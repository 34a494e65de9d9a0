"""A sweep's events in a Redis stream of their own, in the job events' format (app/core/events.py), so that the
sweep's SSE route follows and resumes it from `Last-Event-ID` as a job's route does (app/http/sse.py).

Nothing in the workers writes these events: a sweep's trials change in SQL (their jobs' statuses, their objectives
told to the study). Whoever follows a sweep's stream looks at SQL and publishes what changed since the last look,
as a hash beside the stream records it (each trial's state as last published, and whether the end was). A look
takes a Redis key that expires after LOOK_EVERY_S and is never released, so one sweep is read from SQL at most that
often however many clients follow it; and it publishes only if no other look published while it read (a
WATCHed transaction), so the stream never goes back to an older state of a trial."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import WatchError

from app.core import events
from app.sweeps.schemas import SweepOut

# A sweep's trials change at the pace of epochs, not batches.
LOOK_EVERY_S = 1.0
END = "end"
TERMINAL = ("sweep",)


def stream_key(sweep_id: str) -> str:
    return f"kerasd:sweep:{sweep_id}:events"


def _seen_key(sweep_id: str) -> str:
    return f"kerasd:sweep:{sweep_id}:published"


def _look_key(sweep_id: str) -> str:
    return f"kerasd:sweep:{sweep_id}:look"


def ended(sweep: SweepOut) -> bool:
    """The sweep ended and every trial's end is counted (a trial without an objective has a note)."""
    return sweep.status != "running" and all(t.objective is not None or t.note for t in sweep.trials)


def _entry(sweep_id: str, event_type: str, data: dict[str, Any]) -> dict[str, str]:
    return {
        "v": str(events.SCHEMA_VERSION),
        "type": event_type,
        "sweep_id": sweep_id,
        "ts": events.iso_utc(),
        "data": json.dumps(data, default=str),
    }


async def publish_changes(client: Any, sweep_id: str, read: Callable[[], Awaitable[SweepOut]], *, ttl_s: int) -> None:
    """One look: the sweep as `read` gives it now, each trial whose state changed since the last look published as
    a `trial` event, and once the sweep has ended a last `sweep` event (`status`, `counts`, `best`). Nothing when
    another look was taken less than LOOK_EVERY_S ago, or when another look published while this one read."""
    if not await client.set(_look_key(sweep_id), b"1", nx=True, px=int(LOOK_EVERY_S * 1000)):
        return
    key, seen_key = stream_key(sweep_id), _seen_key(sweep_id)
    async with client.pipeline(transaction=True) as pipe:
        # Watched: a look that read SQL before another published its newer states is dropped, so the stream never
        # goes back to an older state of a trial (each look that publishes read SQL after the one before published).
        await pipe.watch(seen_key)
        seen = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in (await pipe.hgetall(seen_key)).items()
        }
        if END in seen:
            return
        sweep = await read()
        pipe.multi()
        changed = {}
        for trial in sweep.trials:
            data = trial.model_dump(mode="json")
            state = json.dumps(data, sort_keys=True, default=str)
            if seen.get(str(trial.number)) != state:
                pipe.xadd(key, _entry(sweep_id, "trial", data))
                changed[str(trial.number)] = state
        if ended(sweep):
            pipe.xadd(
                key,
                _entry(
                    sweep_id,
                    "sweep",
                    {
                        "status": sweep.status,
                        "counts": sweep.counts,
                        "best": sweep.best.model_dump(mode="json") if sweep.best else None,
                    },
                ),
            )
            changed[END] = "1"
        if not changed:
            return
        pipe.hset(seen_key, mapping=changed)
        pipe.expire(key, ttl_s)
        pipe.expire(seen_key, ttl_s)
        try:
            await pipe.execute()
        except WatchError:
            return
