"""CPU a request of GET /v1/jobs's query-string validation, three ways on one bare FastAPI app, in one run.

- `hand`: app/http/query_model.py, as the route ships it (one pydantic model built from the route's `Query(...)`s)
- `model`: FastAPI's own query parameter model (`Annotated[Model, Query()]`) with the same fields
- `each`: the twelve `Query(...)` parameters as FastAPI validates declared parameters, one by one

All three take the route's own declarations (app/jobs/routes.py's `list_jobs`, its dependencies left out) and
answer the same constant body. Requests are ASGI calls in this process (no server, no network): the figure is
routing, validation and the response. CPU is `time.process_time()` over each batch; the arms take turns, the order
turned every round, so a machine's load falls on all of them alike; each arm's median and its per-round ratio to
`hand` are reported.

    .venv/bin/python bench/query_models.py [--rounds 16] [--requests 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import APIRouter, FastAPI, Query, params
from fastapi.responses import Response
from pydantic import create_model

from app.http.query_model import add_get_route
from app.jobs.routes import list_jobs

QUERIES = {
    "status": b"status=running",
    "full": b"status=running&limit=20&tag=a&tag=b&sort=-created_at&total=estimate&created_after=2026-01-01",
}


def bench_app() -> FastAPI:
    """/hand, /model and /each, each validating list_jobs's query parameters its way."""
    signature = inspect.signature(list_jobs, eval_str=True)
    queried = [p for p in signature.parameters.values() if isinstance(p.default, params.Query)]

    async def constant(**_values: Any) -> Response:
        return Response(b"{}", media_type="application/json")

    declared = constant
    declared.__signature__ = signature.replace(parameters=queried)  # type: ignore[attr-defined]
    # FastAPI's query parameter model: the same annotations, the same Query(...) as each field's default.
    model = create_model("JobListQuery", **{p.name: (p.annotation, p.default) for p in queried})

    async def modelled(**_values: Any) -> Response:
        return Response(b"{}", media_type="application/json")

    # The annotation as an object: this module's annotations are strings, and `model` is no global to find.
    query = inspect.Parameter("query", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[model, Query()])
    modelled.__signature__ = inspect.Signature([query])  # type: ignore[attr-defined]

    router = APIRouter()
    add_get_route(router, "/hand", declared)
    router.add_api_route("/model", modelled, methods=["GET"])
    router.add_api_route("/each", declared, methods=["GET"])
    app = FastAPI()
    app.include_router(router)
    return app


async def batch(app: FastAPI, path: str, query: bytes, count: int) -> float:
    """Microseconds of CPU per request over `count` GETs of `path?query`, each of which must be answered 200."""
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    started = time.process_time()
    for _ in range(count):
        await app(dict(scope), receive, send)
    spent = time.process_time() - started
    assert statuses == {200}, (path, statuses)
    return spent / count * 1e6


async def main(rounds: int, count: int) -> None:
    app = bench_app()
    arms = ["hand", "model", "each"]
    for label, query in QUERIES.items():
        for arm in arms:
            await batch(app, f"/{arm}", query, 300)  # warm up
        spent: dict[str, list[float]] = {arm: [] for arm in arms}
        for round_ in range(rounds):
            for arm in arms if round_ % 2 == 0 else arms[::-1]:
                spent[arm].append(await batch(app, f"/{arm}", query, count))
        print(
            f"?{query.decode()} ({label}): {rounds} rounds of {count} requests an arm; us of CPU a request, median "
            "(min-max), and the median (min-max) of each round's ratio to hand"
        )
        for arm in arms:
            ratios = [value / hand for value, hand in zip(spent[arm], spent["hand"], strict=True)]
            print(
                f"  {arm:<6} {statistics.median(spent[arm]):7.1f} ({min(spent[arm]):.1f}-{max(spent[arm]):.1f})  "
                f"x{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1500)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.requests))
