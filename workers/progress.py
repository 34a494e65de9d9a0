"""Progress from the training loop to the job's Redis Stream, without slowing training (DESIGN.md §8).

The Keras callback only puts events on an in-process queue; a background thread encodes them and does
the network I/O, several events per round trip. Batch events are throttled in time; epoch and terminal
events always go.

Why the callback costs next to nothing: with the TensorFlow backend Keras runs batch hooks synchronously
(`backend.IS_THREAD_SAFE` is False) and `CallbackList` already turns every batch's logs into Python floats
for its built-in History, with or without us, so the only added work per batch is one method call, one
clock read and one comparison. With a thread-safe backend (JAX) `async_safe` lets Keras call it off the
training thread altogether, when the job's other callbacks allow that too.
"""

from __future__ import annotations

import collections
import logging
import math
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import redis

from app.core import events

log = logging.getLogger("kerasd.worker")
_STOP = object()
# Batch events are dropped (never epoch or terminal ones) when Redis is so slow that this many wait.
MAX_QUEUED_BATCH_EVENTS = 1000
# Through a Redis outage the publisher holds the newest this many events (batch events are dropped) and
# retries them this often.
MAX_HELD_EVENTS = 10_000
RETRY_INTERVAL_S = 0.5


class EventPublisher:
    """Publishes a job's events from a background thread; `publish` never touches the network.

    The stream keeps every event but batch events, of which it keeps the newest `maxlen`: older ones are
    deleted by id (XDEL), so `queued`, `started`, every epoch and the end stay for late subscribers and
    the ids of what remains never change (a trim by length would drop the oldest events of any type).
    """

    def __init__(self, client: redis.Redis, *, job_id: str, attempt: int, maxlen: int, ttl_s: int) -> None:
        self._client = client
        self._job_id = job_id
        self._attempt = attempt
        self._maxlen = maxlen
        self._ttl_s = ttl_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._failing = False
        self._flush_timeout_s = 10.0
        self._batch_ids: collections.deque[bytes] = collections.deque()
        self._thread = threading.Thread(target=self._run, name=f"events-{job_id}", daemon=True)
        self._thread.start()

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type not in events.EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        if event_type == "batch" and self._queue.qsize() > MAX_QUEUED_BATCH_EVENTS:
            return
        self._queue.put((event_type, data, time.time()))

    def log(self, message: str, *, level: str = "info") -> None:
        """A `log` event: something the worker wants the user watching the job to read."""
        self.publish("log", {"level": level, "message": message})

    def _run(self) -> None:
        key = events.stream_key(self._job_id)
        # Events a failed round trip could not send, other than batch events: sent first on the next try, so
        # a subscriber who reconnects after a Redis outage still gets every epoch in order.
        held: list[tuple[str, dict[str, Any], float]] = []
        stopping = False
        flush_deadline = math.inf
        while True:
            batch = list(held)
            try:
                # While events are held, wake up to retry them even if training sends nothing new.
                item = self._queue.get(timeout=RETRY_INTERVAL_S if held else None)
                batch.append(item)
            except queue.Empty:
                pass
            while not self._queue.empty():
                batch.append(self._queue.get())
            if _STOP in batch:
                stopping = True
                flush_deadline = time.monotonic() + self._flush_timeout_s
                batch = [item for item in batch if item is not _STOP]
            if batch and self._send(key, batch):
                held = []
            elif batch:
                held = [item for item in batch if item[0] != "batch"][-MAX_HELD_EVENTS:]
            if stopping and (not held or time.monotonic() >= flush_deadline):
                if held:
                    log.error("gave up publishing %d event(s) of job %s: Redis is unreachable", len(held),
                              self._job_id)
                return
            if stopping:
                time.sleep(RETRY_INTERVAL_S)

    def _send(self, key: str, batch: list[tuple[str, dict[str, Any], float]]) -> bool:
        """One pipelined round trip for `batch`; False (and the outage logged once) when Redis fails."""
        try:
            pipe = self._client.pipeline(transaction=False)
            for event_type, data, ts in batch:
                pipe.xadd(key, events.encode(self._job_id, event_type, data, attempt=self._attempt, ts=ts))
            pipe.expire(key, self._ttl_s)
            ids = pipe.execute()[:-1]
            self._batch_ids.extend(i for (event_type, _, _), i in zip(batch, ids, strict=True)
                                   if event_type == "batch")
            if len(self._batch_ids) > self._maxlen:
                old = [self._batch_ids.popleft() for _ in range(len(self._batch_ids) - self._maxlen)]
                self._client.xdel(key, *old)
        except redis.RedisError:
            # The job's truth (status, epochs) is in SQL; events wait for Redis to come back. Log an outage once.
            if not self._failing:
                log.exception("could not publish %d event(s) of job %s; holding them until Redis is back",
                              len(batch), self._job_id)
            self._failing = True
            return False
        if self._failing:
            log.info("publishing events of job %s again", self._job_id)
        self._failing = False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (retrying held events for up to `timeout` seconds), then stop the thread."""
        self._flush_timeout_s = timeout
        self._queue.put(_STOP)
        self._thread.join(timeout + 2 * RETRY_INTERVAL_S)


def plain_logs(logs: dict[str, Any] | None) -> dict[str, float | None]:
    """Keras logs as JSON numbers (NaN and infinities, which JSON lacks, as null)."""
    plain: dict[str, float | None] = {}
    for key, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        plain[key] = number if math.isfinite(number) else None
    return plain


class ProgressCallback(keras.callbacks.Callback):
    """Batch events at most every `batch_interval_s`, an epoch event (after `on_epoch`) every epoch."""

    # Only reads the logs it is given and enqueues: safe for Keras to call from its dispatch thread.
    async_safe = True

    def __init__(self, publisher: EventPublisher, *, on_epoch: Callable[[int, dict[str, Any]], None],
                 batch_interval_s: float, batch_size: int | None = None) -> None:
        super().__init__()
        self._publisher = publisher
        self._on_epoch = on_epoch
        self._interval = batch_interval_s
        self._batch_size = batch_size
        self._next_batch_event = 0.0
        self._epoch = 0
        self._epoch_started = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        self._publisher.log(f"fit: {epochs} epoch(s) of {steps if steps else 'an unknown number of'} step(s)"
                            + (f" of {self._batch_size} samples" if self._batch_size else ""))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._epoch_started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # The hot path: Keras calls this after every batch, on the training thread.
        now = time.monotonic()
        if now < self._next_batch_event:
            return
        self._next_batch_event = now + self._interval
        self._publish_batch(batch, logs, now)

    def _publish_batch(self, batch: int, logs: dict[str, Any] | None, now: float) -> None:
        steps = self.params.get("steps")
        # With several steps an execution, Keras names the execution's last possible step, which can pass the
        # epoch's end.
        done = min(batch + 1, steps) if steps else batch + 1
        elapsed = now - self._epoch_started
        rate = done / elapsed if elapsed > 0 else None
        eta = (steps - done) / rate if (steps and rate) else None
        samples = rate * self._batch_size if (rate and self._batch_size) else None
        self._publisher.publish("batch", {"epoch": self._epoch, "step": done, "steps": steps,
                                          "logs": plain_logs(logs), "steps_per_s": rate,
                                          "samples_per_s": samples, "eta_s": eta})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = plain_logs(logs)
        # SQL first: the history must not miss an epoch that a client has already seen as an event.
        self._on_epoch(epoch, values)
        self._publisher.publish("epoch", {"epoch": epoch, "epochs": self.params.get("epochs"), "logs": values,
                                          "seconds": time.monotonic() - self._epoch_started})


# The files a job's checkpoints are written to (in its work directory), and what each is.
CHECKPOINT_FILES = {
    "resume.keras": "resume",  # the worker's whole training state, to resume a later attempt from (DESIGN §7)
    "checkpoint.weights.h5": "declared",  # a declared ModelCheckpoint's file, returned as an artifact
    "checkpoint.keras": "declared",
}


class CheckpointEvents(keras.callbacks.Callback):
    """A `checkpoint` event whenever a checkpoint file in the job's directory was (re)written during an epoch.

    Put it after the callbacks that save (they save in their own on_epoch_end). A few stat calls per
    epoch, nothing per batch.
    """

    def __init__(self, publisher: EventPublisher, directory: Path,
                 files: dict[str, str] | None = None) -> None:
        super().__init__()
        self._publisher = publisher
        self._directory = directory
        self._files = CHECKPOINT_FILES if files is None else files
        self._seen: dict[str, tuple[int, int]] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for name, kind in self._files.items():
            try:
                stat = (self._directory / name).stat()
            except OSError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._seen.get(name) != stamp:
                self._seen[name] = stamp
                self._publisher.publish("checkpoint", {"epoch": epoch, "name": name, "kind": kind,
                                                       "size_bytes": stat.st_size})


@contextmanager
def warnings_as_events(publisher: EventPublisher) -> Iterator[None]:
    """Python warnings raised while the job runs (Keras's UserWarnings) also become `log` events."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            publisher.log(f"{category.__name__}: {message}", level="warning")
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
