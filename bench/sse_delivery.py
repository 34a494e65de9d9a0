"""What an SSE library would cost one event stream: events per second that sse-starlette's EventSourceResponse
and FastAPI's own deliver, against app/events/routes.py's hand-written StreamingResponse, in one run.

Every arm serves the same events (a job's batch event, as the worker publishes it) from memory through
uvicorn on loopback, in a process of its own, to one httpx client that reads every line; Redis is left out,
so that what differs is only the response: a library's encoding, its send path and its ping and disconnect
tasks, against bytes formatted by hand. One more arm gives sse-starlette the hand-formatted bytes, to tell its
encoding from its sending. The arms alternate A B C D, D C B A, ... so drift on a shared machine hits all
alike; the report gives the median events/s of each, its ratio to the hand-written response's, and the
median of each run's paired ratio.

    .venv/bin/python bench/sse_delivery.py [--events 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import time
from typing import Any

import httpx

EVENT = {
    "id": "1764284401500-0",
    "v": 1,
    "type": "batch",
    "job_id": "0123456789abcdef0123456789abcdef",
    "attempt": 1,
    "ts": "2026-11-28T00:00:01.500000+00:00",
    "data": {
        "epoch": 0,
        "step": 4,
        "steps": 10,
        "logs": {"loss": 2.31, "categorical_accuracy": 0.1},
        "steps_per_s": 80.0,
        "samples_per_s": 8000.0,
        "eta_s": 0.075,
    },
}


def _hand_written(event: dict[str, Any]) -> bytes:
    """app/core/events.py's sse_format."""
    head = f"id: {event['id']}\n" if event.get("id") else ""
    return f"{head}event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _serve(port: int, count: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from fastapi import sse as fastapi_sse
    from fastapi.responses import StreamingResponse
    from sse_starlette import EventSourceResponse, ServerSentEvent

    app = FastAPI()

    async def hand_written():
        yield b"retry: 1000\n: events\n\n"
        for _ in range(count):
            yield _hand_written(EVENT)

    @app.get("/hand")
    async def hand() -> StreamingResponse:
        return StreamingResponse(hand_written(), media_type="text/event-stream")

    @app.get("/library")
    async def library() -> EventSourceResponse:
        async def stream():
            yield ServerSentEvent(retry=1000, comment="events", sep="\n")
            for _ in range(count):
                yield ServerSentEvent(json.dumps(EVENT), id=EVENT["id"], event=EVENT["type"], sep="\n")

        return EventSourceResponse(stream(), sep="\n", ping=15)

    @app.get("/library-bytes")
    async def library_bytes() -> EventSourceResponse:
        return EventSourceResponse(hand_written(), sep="\n", ping=15)

    # FastAPI's own (0.135+): the path operation is the generator, so nothing can be answered but 200.
    @app.get("/fastapi", response_class=fastapi_sse.EventSourceResponse)
    async def fastapi_stream():
        yield fastapi_sse.ServerSentEvent(retry=1000, comment="events")
        for _ in range(count):
            yield fastapi_sse.ServerSentEvent(raw_data=json.dumps(EVENT), id=EVENT["id"], event=EVENT["type"])

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(url: str, count: int) -> float:
    """Events per second one client reads from the stream at `url`."""
    started = time.perf_counter()
    seen = 0
    with httpx.Client(timeout=120) as http, http.stream("GET", url) as response:
        for line in response.iter_lines():
            seen += line.startswith("data: ")
    elapsed = time.perf_counter() - started
    assert seen == count, (url, seen)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port, args.events), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/docs", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
    arms = ("hand", "library", "library-bytes", "fastapi")
    rates: dict[str, list[float]] = {arm: [] for arm in arms}
    try:
        for arm in arms:  # warm-up, untimed
            _read(f"{base}/{arm}", args.events)
        for run in range(args.runs):
            for arm in arms if run % 2 == 0 else reversed(arms):
                rates[arm].append(_read(f"{base}/{arm}", args.events))
    finally:
        server.terminate()
        server.join(5)
    hand = statistics.median(rates["hand"])
    print(f"{args.events} events per stream, {args.runs} runs each (median, range):")
    for arm, what in (
        ("hand", "hand-written StreamingResponse"),
        ("library", "sse-starlette, ServerSentEvent objects"),
        ("library-bytes", "sse-starlette, bytes formatted by hand"),
        ("fastapi", "fastapi.sse.EventSourceResponse"),
    ):
        values = rates[arm]
        # A run's arms are seconds apart: their ratio is robust to the load of a shared machine changing.
        paired = [value / base for value, base in zip(values, rates["hand"], strict=True)]
        print(
            f"  {what:40s} {statistics.median(values):10,.0f} events/s  ({min(values):,.0f} .. "
            f"{max(values):,.0f})  {statistics.median(values) / hand:.3f} of hand-written; per run "
            f"{statistics.median(paired):.3f} ({min(paired):.3f} .. {max(paired):.3f})"
        )


if __name__ == "__main__":
    main()
