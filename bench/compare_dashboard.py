"""The dashboard's compare view of many runs, timed in Chromium (Debian's, driven by Playwright): from opening
`#/compare?ids=...` to the view shown, and on to everything drawn.

"Shown" is the moment the page marks itself rendered: the compare answers arrived and parsed, the run legend made,
and the charts in sight of a 1400 x 1000 window drawn with a curve per run, then painted. At that moment the charts
below them, the params x metrics table and the scatter under those are boxes of their size still empty: they are
drawn as they are scrolled near, or one at a time in idle time after it. The bench prints how many charts were
drawn when the clock stopped, and the time until everything was drawn; it fails if a chart then lacks a run's curve
or the table a run's row.

Two ways to run it:

- against a running API holding the runs: `measure(api_url, ids)`, the compare route's answers included: give the
  URL and a file of job ids here;
- `--synthetic`: no kerasd at all. The page's own files come from the package, and a compare answer of the same
  size, generated here once, is served from memory by an HTTP server on 127.0.0.1: the browser's share alone (the
  answers received and parsed, the view drawn). A real API adds its own time to the answers' arrival (the compare
  route answered 500 runs in 0.47 s on a quiet machine, bench/compare.py). `--answers playwright` hands them to the
  page from Playwright's route handler instead, as this bench did before: that passing counts in the answers'
  arrival, and under load it was most of it.

Printed per arm: opened to shown, by this process's clock around the page's call and by the page's own; the page's
split of it (the answers' arrival, then the drawing up to shown); and opened to everything drawn (the page's clock).
`--baseline REF` alternates rounds of the page's files as they are at a git ref (e.g. `main`) with the working
tree's, in the same browser: a before/after on a machine whose load moves.

    .venv/bin/python bench/compare_dashboard.py --synthetic [--runs 500 --metrics 20 --epochs 100 --rounds 3]
    .venv/bin/python bench/compare_dashboard.py --synthetic --baseline main --rounds 7
    .venv/bin/python bench/compare_dashboard.py --url http://127.0.0.1:8000 --ids-file ids.txt [--api-key KEY]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import math
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATIC = Path(__file__).resolve().parent.parent / "app" / "system" / "static"
SYNTHETIC_URL = "http://kerasd.bench"  # with --answers playwright: never reached, Playwright answers every request
ANSWERS: dict[str, bytes] = {}  # the synthetic compare answers, by path and query


def synthetic_comparison(ids: list[str], *, metrics: int, epochs: int, seed: int = 0) -> dict[str, Any]:
    """A compare answer in the route's shape: `metrics` metrics (half of them val_), `epochs` epochs per run,
    parameters of which three differ between runs."""
    rng = random.Random(seed)
    base = [f"metric_{i}" for i in range(metrics // 2)]
    names = [*base, *[f"val_{m}" for m in base]][:metrics]
    runs = []
    for index, run_id in enumerate(ids):
        rate = 10 ** rng.uniform(-4, -1)
        history = {
            name: [
                round(2.3 * math.exp(-rate * 50 * epoch / epochs) + rng.gauss(0, 0.01), 5) for epoch in range(epochs)
            ]
            for name in names
        }
        metrics_of = {
            name: {"final": values[-1], "best": min(values), "best_epoch": values.index(min(values)), "goal": "min"}
            for name, values in history.items()
        }
        runs.append(
            {
                "id": run_id,
                "name": f"run-{index:03d}",
                "tags": ["bench"],
                "status": "succeeded",
                "kind": "fit",
                "model_id": "0" * 32,
                "created_at": "2026-12-04T00:00:00+00:00",
                "params": {
                    "optimizer": rng.choice(["Adam", "SGD", "RMSprop"]),
                    "optimizer.learning_rate": rate,
                    "fit.batch_size": rng.choice([32, 64, 128]),
                    "fit.epochs": epochs,
                    "seed": 7,
                },
                "metrics": metrics_of,
                "history": history,
            }
        )
    return {
        "runs": runs,
        "metric_names": names,
        "param_names": ["fit.batch_size", "fit.epochs", "optimizer", "optimizer.learning_rate", "seed"],
        "differing_params": ["fit.batch_size", "optimizer", "optimizer.learning_rate"],
    }


def _synthetic_answer(path: str, comparison: dict[str, Any], static: Path) -> tuple[int, str, bytes]:
    """The answer to one of the page's requests (its path and query): status, content type, body. The page's files
    come from `static`, the compare answer from memory (by the ids asked)."""
    if path.startswith("/v1/jobs/compare"):
        # Written once per set of ids (the untimed warm-up round asks them first): writing 20 MB of JSON here
        # took Python tenths of a second inside the timed window, which is not the browser's share.
        if path not in ANSWERS:
            by_id = {run["id"]: run for run in comparison["runs"]}
            ids = path.split("ids=", 1)[1].split(",")
            ANSWERS[path] = json.dumps({**comparison, "runs": [by_id[i] for i in ids]}).encode()
        return 200, "application/json", ANSWERS[path]
    if path.startswith("/dashboard/static/"):
        file = static / path[len("/dashboard/static/") :]
        if file.is_file():
            types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
            return 200, types.get(file.suffix, "application/octet-stream"), file.read_bytes()
    elif path.startswith("/dashboard"):
        return 200, "text/html", (static / "index.html").read_bytes()
    elif path.startswith("/version"):
        return (
            200,
            "application/json",
            json.dumps({"kerasd": "bench", "keras": "-", "backend": "-", "workers": []}).encode(),
        )
    return 404, "application/json", json.dumps({"detail": f"not served in the synthetic bench: {path}"}).encode()


def _serve_by_playwright(page: Any, comparison: dict[str, Any], static: Path) -> None:
    """Answer the page's requests from Playwright's route handler (`--answers playwright`)."""

    def answer(route: Any) -> None:
        status, content_type, body = _synthetic_answer(
            route.request.url[len(SYNTHETIC_URL) :].split("#")[0], comparison, static
        )
        route.fulfill(status=status, body=body, content_type=content_type)

    page.route(f"{SYNTHETIC_URL}/**", answer)


@contextlib.contextmanager
def _served_by_http(comparison: dict[str, Any], static: Path) -> Iterator[str]:
    """Answer the page's requests from an HTTP server on 127.0.0.1 (a thread of this process); yields its URL.
    Playwright's route handler hands each answer from this process to its driver and on to Chromium as base64 in
    JSON messages: for three answers of 7 MB that took 4-7 s under load 15 before the page had the first byte (the
    page's own clock), against 0.1-0.3 s to read and parse each. A server passes them as a real one does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept alive, as the browser's connections to a real API are

        def do_GET(self) -> None:
            status, content_type, body = _synthetic_answer(self.path, comparison, static)
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # a line per request, inside the timed window
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Opens the compare view and resolves when the page marks it shown (data-rendered, set once the charts in sight are
# drawn and painted), told by a MutationObserver: Playwright's wait_for_selector asks again after 0, 20, 50, 100,
# 100 ms and then every 500 ms, which added up to half a second to a view shown in 2 s. Returns the page's clock
# at the start and at the end, and the charts holding their curves at that moment.
OPEN_AND_WAIT_SHOWN = """hash => new Promise(resolve => {
  const started = performance.now();
  const observer = new MutationObserver(() => {
    const section = document.querySelector('section.compare');
    if (!section || section.dataset.rendered !== 'true') return;
    observer.disconnect();
    const charts = [...document.querySelectorAll('.compare-chart')];
    resolve({started, shown: performance.now(), charts: charts.length, drawn: charts.filter(e => e.uplot).length});
  });
  observer.observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-rendered']});
  location.hash = hash;
})"""
# Resolves with the page's clock once every part is drawn (every chart, the table, the scatter: data-complete); a
# page from before the parts out of sight were drawn later has no data-complete: it drew all before it was shown.
WAIT_COMPLETE = """() => new Promise(resolve => {
  const section = document.querySelector('section.compare');
  const done = () => !section.dataset.complete || section.dataset.complete === 'true';
  if (done()) return resolve(performance.now());
  const observer = new MutationObserver(() => {
    if (done()) { observer.disconnect(); resolve(performance.now()); }
  });
  observer.observe(section, {attributes: true, attributeFilter: ['data-complete']});
})"""


def _time_round(
    browser: Any, base_url: str, prepare: Callable[[Any], None] | None, ids: list[str], *, api_key: str | None
) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        if api_key:
            context.add_init_script(f"sessionStorage.setItem('kerasd.api_key', {json.dumps(api_key)})")
        page = context.new_page()
        page.set_default_timeout(120_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        if prepare is not None:
            prepare(page)
        page.goto(f"{base_url}/dashboard#/new")
        page.wait_for_selector("#job-request")
        started = time.perf_counter()
        shown = page.evaluate(OPEN_AND_WAIT_SHOWN, f"#/compare?ids={','.join(ids)}")
        outer = time.perf_counter() - started
        complete = page.evaluate(WAIT_COMPLETE)
        split = page.eval_on_selector("section.compare", "s => [Number(s.dataset.fetchMs), Number(s.dataset.drawMs)]")
        # Every chart, once all are drawn, holds a curve per run, and the table a row per run (the bench's check that
        # nothing was left out).
        curves = page.eval_on_selector_all(".compare-chart", "els => els.map(e => e.uplot.series.length - 1)")
        if errors:
            raise RuntimeError(f"the page failed: {errors}")
        if len(set(curves)) != 1 or curves[0] != len(ids):
            raise RuntimeError(f"the charts do not have a curve per run: {curves[:5]}...")
        rows = page.eval_on_selector_all("#compare-table tbody tr", "rows => rows.length")
        if rows != len(ids):
            raise RuntimeError(f"the table has {rows} rows for {len(ids)} runs")
        return {
            "total_s": outer,
            "page_shown_s": (shown["shown"] - shown["started"]) / 1000,
            "answers_s": split[0] / 1000,
            "draw_s": split[1] / 1000,
            "all_s": (complete - shown["started"]) / 1000,
            "charts": shown["charts"],
            "drawn": shown["drawn"],
        }
    finally:
        context.close()


def _time_rounds(
    ids: list[str], *, rounds: int, api_key: str | None, arms: dict[str, tuple[str, Callable[[Any], None] | None]]
) -> dict[str, list[dict[str, float]]]:
    """`rounds` rounds of each arm ({label: (its URL, how its page is prepared)}) after an untimed one, the arms
    alternated A B B A ..."""
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict[str, float]]] = {label: [] for label in arms}
    labels = list(arms)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for label in labels:  # untimed: the browser's caches and the synthetic answers made
                _time_round(browser, *arms[label], ids, api_key=api_key)
            for round_ in range(rounds):
                for label in labels if round_ % 2 == 0 else labels[::-1]:
                    results[label].append(_time_round(browser, *arms[label], ids, api_key=api_key))
        finally:
            browser.close()
    return results


def measure(api_url: str, ids: list[str], *, rounds: int = 3, api_key: str | None = None) -> list[dict[str, float]]:
    """The compare view of these stored runs against a running API, `rounds` times in fresh tabs: per round the whole
    time in seconds (to shown), the answers' arrival, the drawing, everything drawn, the charts and those drawn when
    shown."""
    return _time_rounds(ids, rounds=rounds, api_key=api_key, arms={"api": (api_url, None)})["api"]


def static_at(ref: str, into: Path) -> Path:
    """The dashboard's files as they are at a git ref, unpacked under `into`."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", ref, "app/system/static"], check=True, capture_output=True
    ).stdout
    tar_path = into / "static.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "app" / "system" / "static"


def measure_synthetic(
    *, runs: int, metrics: int, epochs: int, rounds: int = 3, baseline: str | None = None, answers: str = "http"
) -> dict[str, list[dict[str, float]]]:
    ids = [f"{index:032x}" for index in range(1, runs + 1)]
    comparison = synthetic_comparison(ids, metrics=metrics, epochs=epochs)
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as servers:
        statics: dict[str, Path] = {}
        if baseline:
            statics[f"before ({baseline})"] = static_at(baseline, Path(scratch))
        statics["working tree" if baseline else "synthetic"] = STATIC
        arms: dict[str, tuple[str, Callable[[Any], None] | None]] = {}
        for label, static in statics.items():
            if answers == "playwright":
                arms[label] = (
                    SYNTHETIC_URL,
                    lambda page, static=static: _serve_by_playwright(page, comparison, static),
                )
            else:  # a server per arm: an origin, and so a browser cache, of its own
                arms[label] = (servers.enter_context(_served_by_http(comparison, static)), None)
        return _time_rounds(ids, rounds=rounds, api_key=None, arms=arms)


def report(label: str, results: list[dict[str, float]]) -> None:
    def med(key: str) -> str:
        values = [r[key] for r in results]
        return f"{statistics.median(values):.2f} s (range {min(values):.2f}-{max(values):.2f})"

    drawn = sorted({int(r["drawn"]) for r in results})
    print(
        f"{label}: {len(results)} rounds, {int(results[0]['charts'])} charts, "
        f"{'/'.join(map(str, drawn))} of them drawn when shown"
    )
    print(
        f"  opened to shown: {med('total_s')} (the page's clock: {med('page_shown_s')})   "
        f"answers: {med('answers_s')}   drawing: {med('draw_s')}"
    )
    print(f"  opened to everything drawn (every chart, the table, the scatter; the page's clock): {med('all_s')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", action="store_true", help="no server: a generated answer, the page alone")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a running API (with --ids-file)")
    parser.add_argument("--ids-file", type=Path, help="job ids, one a line")
    parser.add_argument("--api-key")
    parser.add_argument(
        "--baseline",
        help="with --synthetic: also time the page's files at this git ref, rounds alternated with the working tree's",
    )
    parser.add_argument(
        "--answers",
        choices=["http", "playwright"],
        default="http",
        help="with --synthetic: the page's requests answered by an HTTP server on 127.0.0.1 (default), or by "
        "Playwright's route handler (as this bench did before; its passing of 20 MB counts in the answers' arrival)",
    )
    args = parser.parse_args()
    if args.synthetic:
        arms = measure_synthetic(
            runs=args.runs,
            metrics=args.metrics,
            epochs=args.epochs,
            rounds=args.rounds,
            baseline=args.baseline,
            answers=args.answers,
        )
        for label, results in arms.items():
            report(f"{label}: {args.runs} runs x {args.metrics} metrics x {args.epochs} epochs", results)
    elif args.url and args.ids_file:
        ids = [line.strip() for line in args.ids_file.read_text().splitlines() if line.strip()]
        results = measure(args.url, ids, rounds=args.rounds, api_key=args.api_key)
        report(f"{args.url}: {len(ids)} runs", results)
    else:
        parser.error("give --synthetic, or --url and --ids-file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
