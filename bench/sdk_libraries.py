"""The SDK's maintained libraries against the hand-written code they replaced (the 5% rule: a library stays
unless it costs more than 5% on what a user waits for).

- SSE, end to end: a finished job's event stream (20,000 events, 9 batch events to an epoch event, as a worker
  publishes them into the job's Redis Stream) read from a real `kerasd api` process over loopback until its
  `finished` event: the hand-written parser the SDK had (copied below as the baseline) over httpx's `iter_lines`,
  against `client.jobs.events(id)` (httpx-sse and tenacity). This is the decision.
- SSE, the client alone: the same kind of stream from memory (httpx's MockTransport, 16 KiB chunks), which shows
  the parsers' own cost with no server and no network: the upper bound of what the library can cost.
- Requests: `GET /v1/jobs/{id}` from the same API by `Client._send` (tenacity's retry policy) against one request
  and one status check, the hand-written loop's path for an answer that is not refused.
- Progress: one bar update with five metrics, drawn on a live display (redirected to memory), by Keras's
  `Progbar` against kerasd's own bar.

The arms alternate A B B A over the runs; each figure is the median over the runs of the per-item time, with the
range, as wall time and as the CPU time of this (the client's) process; the ratio is library / hand-written
(above 1.05: the library costs more than 5%), of the medians and the median of each run's paired ratio. Needs
PostgreSQL and Redis (`scripts/test` starts them); the API runs on a scratch database that is dropped afterwards.

    .venv/bin/python bench/sdk_libraries.py [--runs 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from httpx_sse import EventSource  # noqa: E402

from bench._harness import api_process, scratch_database, server_env  # noqa: E402
from kerasd._base import Call  # noqa: E402
from kerasd.client import Client  # noqa: E402
from kerasd.events import Deduplicator, EventStream, event_from_message  # noqa: E402


class HandWrittenSSEParser:
    """The SDK's SSE parser before httpx-sse (WHATWG: fields per line, a blank line ends a message)."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self.last_id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Any:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data and self._event is None:
                self._event, self._data, self._id = None, [], None
                return None
            if self._id is not None:
                self.last_id = self._id
            event = event_from_message(self._event, self._id or self.last_id, "\n".join(self._data))
            self._event, self._data, self._id = None, [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def worker_event(index: int, count: int) -> tuple[str, dict[str, Any]]:
    """The `index`-th of `count` events as a worker publishes them: nine batch events, then an epoch event."""
    if index % 10 == 9:
        return "epoch", {"epoch": index // 10, "epochs": count // 10, "seconds": 0.21,
                         "logs": {"loss": 2.301, "categorical_accuracy": 0.11, "val_loss": 2.31,
                                  "val_categorical_accuracy": 0.09}}
    return "batch", {"epoch": index // 10, "step": index % 10, "steps": 10,
                     "logs": {"loss": 2.31, "categorical_accuracy": 0.1}, "steps_per_s": 80.0,
                     "samples_per_s": 8000.0, "eta_s": 0.075}


def sse_body(count: int) -> bytes:
    parts = ["retry: 1000\n: events of job j\n\n"]
    for index in range(count):
        event_id = f"1764284400000-{index}"
        kind, data = worker_event(index, count)
        payload = {"id": event_id, "v": 1, "type": kind, "job_id": "0" * 32, "attempt": 1,
                   "ts": "2026-11-28T00:00:01.500000+00:00", "data": data}
        parts.append(f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(payload)}\n\n")
        if index % 50 == 49:
            parts.append(": heartbeat\n\n")
    return "".join(parts).encode()


def streamed(body: bytes) -> httpx.Client:
    chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Chunks(chunks))

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://bench")


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self):
        yield from self._chunks


def sse_hand_written(http: httpx.Client) -> int:
    # As the client used it: each parsed event checked against those already delivered.
    parser, dedupe, count = HandWrittenSSEParser(), Deduplicator(), 0
    with http.stream("GET", "/events") as response:
        for line in response.iter_lines():
            event = parser.feed(line)
            if event is not None and dedupe.fresh(event):
                count += 1
    return count


def sse_library(http: httpx.Client) -> int:
    stream, count = EventStream("0" * 32), 0
    with http.stream("GET", "/events") as response:
        for sse in EventSource(response).iter_sse():
            if stream.accept(sse, 1) is not None:
                count += 1
    return count


def a_finished_job(api: str, database_url: str, redis_url: str, events: int) -> str:
    """A fit job (never given to a worker) whose Redis Stream holds `events` events and its `finished`."""
    import psycopg
    import redis

    from app.core import events as contract
    from tests.seed import SEED_COMPILE, SEED_MODEL, npz_bytes, seed_arrays

    with httpx.Client(base_url=api, timeout=120) as http:
        dataset = http.post("/v1/datasets", files={"file": ("seed.npz", npz_bytes(**seed_arrays()))}).json()
        model = http.post("/v1/models", json=SEED_MODEL).json()
        job = http.post("/v1/jobs", json={"kind": "fit", "model_id": model["id"], "compile": SEED_COMPILE, "fit": {
            "x": {"dataset_id": dataset["id"], "array": "train_x"},
            "y": {"dataset_id": dataset["id"], "array": "train_y"}, "epochs": events // 10}}).json()
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    key = contract.stream_key(job["id"])
    for index in range(events):
        kind, data = worker_event(index, events)
        pipe.xadd(key, contract.encode(job["id"], kind, data, attempt=1))
    pipe.xadd(key, contract.encode(job["id"], "finished", {"status": "succeeded"}, attempt=1))
    pipe.expire(key, 3600)
    pipe.execute()
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as sql:
        sql.execute("UPDATE jobs SET status = 'succeeded', attempt = 1, started_at = now(), finished_at = now() "
                    "WHERE id = %s", (job["id"],))
    return job["id"]


def replay_hand_written(api: str, job_id: str) -> int:
    # The client before httpx-sse: lines from httpx, its parser, its check for repeats, the job read at the end.
    parser, dedupe, count = HandWrittenSSEParser(), Deduplicator(), 0
    with httpx.Client(base_url=api, timeout=120) as http:
        with http.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}) as response:
            for line in response.iter_lines():
                event = parser.feed(line)
                if event is None or not dedupe.fresh(event):
                    continue
                count += 1
                if event.terminal and http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded":
                    break
    return count


def replay_library(api: str, job_id: str) -> int:
    with Client(api, verbose=0) as client:
        return sum(1 for _ in client.jobs.events(job_id))


def requests_hand_written(client: Client, job_id: str, count: int) -> None:
    call = Call("GET", f"/v1/jobs/{job_id}")
    for _ in range(count):
        # The loop before tenacity: one request, one status check, a retry only for 429 / 503.
        response = client._http.request(call.method, call.path, **client._request_kwargs(call))
        if response.status_code in (429, 503):
            raise RuntimeError("the bench server refused a request")
        client._answer(call, response)


def requests_library(client: Client, job_id: str, count: int) -> None:
    call = Call("GET", f"/v1/jobs/{job_id}")
    for _ in range(count):
        client._send(call)


def progress_arms(updates: int) -> tuple[Callable[[], None], Callable[[], None]]:
    import keras

    from kerasd.progress import ProgressBar

    values = {"loss": 0.5, "accuracy": 0.8, "auc": 0.9, "val_loss": 0.6, "val_accuracy": 0.7}

    def ours() -> None:
        sink = io.StringIO()
        bar = ProgressBar(updates, stream=sink, interval=0)
        bar.dynamic = True
        for step in range(1, updates + 1):
            bar.update(step, values, finalize=step == updates)

    def keras_progbar() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            bar = keras.utils.Progbar(updates, interval=0, stateless_metrics=())
            items = list(values.items())
            for step in range(1, updates + 1):
                bar.update(step, items, finalize=step == updates)

    return ours, keras_progbar


def _line(name: str, unit: str, what: str, times: dict[str, list[float]]) -> dict[str, float]:
    medians = {label: statistics.median(values) for label, values in times.items()}
    ratio = medians["library"] / medians["hand-written"]
    # A run's two arms are seconds apart: their ratio holds up better when the shared machine's load changes.
    paired = statistics.median(b / a for a, b in zip(times["hand-written"], times["library"], strict=True))
    hand, library = times["hand-written"], times["library"]
    print(f"{name}, {what}: hand-written {medians['hand-written']:.1f} us/{unit} [{min(hand):.1f}-{max(hand):.1f}], "
          f"library {medians['library']:.1f} us/{unit} [{min(library):.1f}-{max(library):.1f}]; library / "
          f"hand-written {ratio:.3f} (medians), {paired:.3f} (median of the runs' paired ratios)")
    return {"ratio": ratio, "paired": paired}


def compare(name: str, unit: str, items: int, runs: int, hand_written: Callable[[], Any],
            library: Callable[[], Any]) -> dict[str, Any]:
    """Wall time, and this process's CPU time (what the client itself spends: the other processes on a shared
    machine slow its wall time, hardly its CPU time)."""
    wall: dict[str, list[float]] = {"hand-written": [], "library": []}
    cpu: dict[str, list[float]] = {"hand-written": [], "library": []}
    arms = (("hand-written", hand_written), ("library", library))
    for run in range(runs):
        for label, arm in arms if run % 2 == 0 else arms[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            arm()
            cpu[label].append((time.process_time() - start_cpu) / items * 1e6)
            wall[label].append((time.perf_counter() - start) / items * 1e6)
    return {"name": name, "wall": _line(name, unit, "wall", wall), "cpu": _line(name, unit, "client CPU", cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    events = 20_000
    with tempfile.TemporaryDirectory() as scratch, scratch_database() as database_url:
        # No rate limit in the way of the request arms (the default is 50 a second per tenant).
        env = server_env(database_url, Path(scratch), KERASD_REQUESTS_PER_S_PER_TENANT="1000000",
                         KERASD_REQUEST_BURST_PER_TENANT="1000000")
        with api_process(env, Path(scratch)) as (_process, api):
            job_id = a_finished_job(api, database_url, env["KERASD_REDIS_URL"], events)
            assert replay_hand_written(api, job_id) == replay_library(api, job_id) == events + 2
            compare("SSE replay from the API", "event", events, args.runs,
                    lambda: replay_hand_written(api, job_id), lambda: replay_library(api, job_id))
            with Client(api, verbose=0) as client:
                requests = 500
                requests_hand_written(client, job_id, 50)
                compare("GET /v1/jobs/{id} from the API", "request", requests, args.runs,
                        lambda: requests_hand_written(client, job_id, requests),
                        lambda: requests_library(client, job_id, requests))

    http = streamed(sse_body(events))
    assert sse_hand_written(http) == sse_library(http) == events
    compare("SSE parsing alone (from memory)", "event", events, args.runs, lambda: sse_hand_written(http),
            lambda: sse_library(http))

    updates = 2000
    ours, keras_progbar = progress_arms(updates)
    compare("progress bar update", "update", updates, args.runs, ours, keras_progbar)


if __name__ == "__main__":
    main()
