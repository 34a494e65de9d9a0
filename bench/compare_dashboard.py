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
- `--synthetic`: no server at all. The page's own files come from the package, and a compare answer of the same
  size, generated here, is handed to the page by Playwright: the browser's share alone (the answer parsed, aligned
  and drawn), with Playwright's passing of 20 MB to the page counted in the answers' arrival.

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
import json
import math
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
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
SYNTHETIC_URL = "http://kerasd.bench"  # never reached: every request of the synthetic page is answered by Playwright
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


def _serve_synthetic(page: Any, comparison: dict[str, Any], static: Path = STATIC) -> None:
    """Answer the page's requests: its files from `static`, the compare answer from memory (by the ids asked)."""
    by_id = {run["id"]: run for run in comparison["runs"]}
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

    def answer(route: Any) -> None:
        path = route.request.url[len(SYNTHETIC_URL) :].split("#")[0]
        if path.startswith("/v1/jobs/compare"):
            # Written once per set of ids (the untimed warm-up round asks them first): writing 20 MB of JSON here
            # took Python tenths of a second inside the timed window, which is not the browser's share.
            if path not in ANSWERS:
                ids = path.split("ids=", 1)[1].split(",")
                ANSWERS[path] = json.dumps({**comparison, "runs": [by_id[i] for i in ids]}).encode()
            route.fulfill(body=ANSWERS[path], content_type="application/json")
        elif path.startswith("/dashboard/static/"):
            file = static / path[len("/dashboard/static/") :]
            route.fulfill(body=file.read_bytes(), content_type=types.get(file.suffix, "application/octet-stream"))
        elif path.startswith("/dashboard"):
            route.fulfill(body=(static / "index.html").read_bytes(), content_type="text/html")
        elif path.startswith("/version"):
            route.fulfill(json={"kerasd": "bench", "keras": "-", "backend": "-", "workers": []})
        else:
            route.fulfill(status=404, json={"detail": f"not served in the synthetic bench: {path}"})

    page.route(f"{SYNTHETIC_URL}/**", answer)


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
    browser: Any, base_url: str, ids: list[str], *, api_key: str | None, prepare: Callable[[Any], None] | None
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
    base_url: str,
    ids: list[str],
    *,
    rounds: int,
    api_key: str | None,
    prepares: dict[str, Callable[[Any], None] | None],
) -> dict[str, list[dict[str, float]]]:
    """`rounds` rounds of each arm ({label: how its page is prepared}) after an untimed one, the arms alternated
    A B B A ..."""
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict[str, float]]] = {label: [] for label in prepares}
    labels = list(prepares)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for label in labels:  # untimed: the browser's caches and the synthetic answers made
                _time_round(browser, base_url, ids, api_key=api_key, prepare=prepares[label])
            for round_ in range(rounds):
                for label in labels if round_ % 2 == 0 else labels[::-1]:
                    results[label].append(_time_round(browser, base_url, ids, api_key=api_key, prepare=prepares[label]))
        finally:
            browser.close()
    return results


def measure(api_url: str, ids: list[str], *, rounds: int = 3, api_key: str | None = None) -> list[dict[str, float]]:
    """The compare view of these stored runs against a running API, `rounds` times in fresh tabs: per round the whole
    time in seconds (to shown), the answers' arrival, the drawing, everything drawn, the charts and those drawn when
    shown."""
    return _time_rounds(api_url, ids, rounds=rounds, api_key=api_key, prepares={"api": None})["api"]


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
    *, runs: int, metrics: int, epochs: int, rounds: int = 3, baseline: str | None = None
) -> dict[str, list[dict[str, float]]]:
    ids = [f"{index:032x}" for index in range(1, runs + 1)]
    comparison = synthetic_comparison(ids, metrics=metrics, epochs=epochs)
    with tempfile.TemporaryDirectory() as scratch:
        arms: dict[str, Path] = {}
        if baseline:
            arms[f"before ({baseline})"] = static_at(baseline, Path(scratch))
        arms["working tree" if baseline else "synthetic"] = STATIC
        prepares = {
            label: (lambda page, static=static: _serve_synthetic(page, comparison, static))
            for label, static in arms.items()
        }
        return _time_rounds(SYNTHETIC_URL, ids, rounds=rounds, api_key=None, prepares=prepares)


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
    args = parser.parse_args()
    if args.synthetic:
        arms = measure_synthetic(
            runs=args.runs, metrics=args.metrics, epochs=args.epochs, rounds=args.rounds, baseline=args.baseline
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
