"""Progress from the training loop to the job's Redis Stream, without slowing training (DESIGN.md §8).

The Keras callback only puts events on an in-process queue; a background thread does the network I/O,
several events per round trip. Batch events are throttled in time; epoch and terminal events always go.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import keras
import redis

from app import events

log = logging.getLogger("kerasd.worker")
_STOP = object()


class EventPublisher:
    def __init__(self, client: redis.Redis, *, job_id: str, attempt: int, maxlen: int, ttl_s: int) -> None:
        self._client = client
        self._job_id = job_id
        self._attempt = attempt
        self._maxlen = maxlen
        self._ttl_s = ttl_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"events-{job_id}", daemon=True)
        self._thread.start()

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        self._queue.put(events.encode(self._job_id, event_type, data, attempt=self._attempt))

    def _run(self) -> None:
        key = events.stream_key(self._job_id)
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get())
            if batch[-1] is _STOP:
                stopping = True
                batch.pop()
            if not batch:
                continue
            try:
                pipe = self._client.pipeline(transaction=False)
                for fields in batch:
                    pipe.xadd(key, fields, maxlen=self._maxlen, approximate=True)
                pipe.expire(key, self._ttl_s)
                pipe.execute()
            except redis.RedisError:
                # Progress is best effort; the job's truth (status, epochs) is in SQL.
                log.exception("could not publish %d event(s) of job %s", len(batch), self._job_id)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)


def plain_logs(logs: dict[str, Any] | None) -> dict[str, float]:
    return {key: float(value) for key, value in (logs or {}).items()}


class ProgressCallback(keras.callbacks.Callback):
    def __init__(self, publisher: EventPublisher, *, on_epoch: Callable[[int, dict[str, float]], None],
                 batch_interval_s: float) -> None:
        super().__init__()
        self._publisher = publisher
        self._on_epoch = on_epoch
        self._interval = batch_interval_s
        self._last_batch_event = 0.0
        self._epoch = 0
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._epoch_started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if now - self._last_batch_event < self._interval:
            return
        self._last_batch_event = now
        steps = self.params.get("steps")
        done = batch + 1
        elapsed = now - self._epoch_started
        rate = done / elapsed if elapsed > 0 else None
        eta = (steps - done) / rate if (steps and rate) else None
        self._publisher.publish("batch", {"epoch": self._epoch, "step": done, "steps": steps,
                                          "logs": plain_logs(logs), "steps_per_s": rate, "eta_s": eta})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = plain_logs(logs)
        # SQL first: the history must not miss an epoch that a client has already seen as an event.
        self._on_epoch(epoch, values)
        self._publisher.publish("epoch", {"epoch": epoch, "epochs": self.params.get("epochs"), "logs": values,
                                          "seconds": time.monotonic() - self._epoch_started})
