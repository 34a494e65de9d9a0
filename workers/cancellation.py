"""Cooperative cancel (DESIGN.md §9): a listener thread sets a flag; a callback stops Keras at the batch end.

The training loop only reads a threading.Event per batch; the network (Redis pub/sub, and the SQL flag
read at lease renewal) is watched by other threads.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import keras
import redis

from app.core.control import CANCEL, control_channel

log = logging.getLogger("kerasd.worker")


class CancelFlag:
    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self.requested = threading.Event()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(control_channel(job_id))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._listen, name=f"cancel-{job_id}", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            while not self._closed.is_set():
                try:
                    message = self._pubsub.get_message(timeout=0.5)
                except (redis.RedisError, ValueError):
                    if self._closed.is_set():
                        return
                    log.warning("cancel listener lost Redis; the lease renewal still sees cancels in SQL")
                    self._closed.wait(2)
                    continue
                if message and message.get("data") in (CANCEL, CANCEL.encode()):
                    self.requested.set()
        finally:
            try:
                self._pubsub.close()
            except redis.RedisError:
                pass

    def close(self) -> None:
        """Returns at once: the listener notices within its 0.5 s poll and closes its connection itself. (Waiting
        for it here held the worker that long after each job's end, before it took the next job.)"""
        self._closed.set()


class CancelCallback(keras.callbacks.Callback):
    """Stops fit, evaluate or predict at the end of the batch during which the cancel arrived."""

    def __init__(self, flag: threading.Event) -> None:
        super().__init__()
        self._flag = flag
        self._epoch = 0
        self.stopped_at: dict[str, int] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._flag.is_set():
            if self.stopped_at is None:
                self.stopped_at = {"epoch": self._epoch + 1, "batch": batch + 1}
            self.model.stop_training = True

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._flag.is_set():
            self.model.stop_evaluating = True

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._flag.is_set():
            self.model.stop_predicting = True
