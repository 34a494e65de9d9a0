"""The dashboard's compare view in a real browser (Debian's Chromium driven by Playwright) against the real API:
three finished runs found by their tag and selected in the jobs table, their curves overlaid per metric as the
page's charts hold them (the charts in sight drawn before the view is shown, the others when scrolled to or after),
the table of params and metrics marking the parameters that differ, and sorting by a metric."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, upload, wait_for_job
from tests.test_dashboard import Page, browser, tab  # noqa: F401  (the browser fixtures)

# name: (learning rate, fit arguments)
RUNS = {
    "run-a": (0.001, {"epochs": 3}),
    "run-b": (0.01, {"epochs": 3}),
    "run-c": (0.001, {"epochs": 2, "batch_size": 50}),
}


def three_named_runs(client: httpx.Client, tag: str) -> dict[str, dict[str, Any]]:
    """The runs, finished: {name: the job as GET /v1/jobs/{id} answers it}."""
    dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]
    model = client.post("/v1/models", json=SEED_MODEL).json()["id"]
    ids = {}
    for name, (rate, fit) in RUNS.items():
        request = fit_request(model, dataset, **fit)
        request["compile"]["optimizer"]["config"]["learning_rate"] = rate
        created = client.post("/v1/jobs", json=request)
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
        named = client.patch(f"/v1/jobs/{ids[name]}", json={"name": name, "tags": [tag]})
        assert named.status_code == 200, named.text
    runs = {name: wait_for_job(client, job_id) for name, job_id in ids.items()}
    assert all(job["status"] == "succeeded" for job in runs.values()), {n: j["error"] for n, j in runs.items()}
    return runs


SHOWN = "[...document.querySelectorAll('#jobs tbody tr')].map(r => r.dataset.jobId)"
SHOWS_EXACTLY = f"ids => JSON.stringify({SHOWN}.sort()) === JSON.stringify(ids)"
SHOWS_IN_ORDER = f"ids => JSON.stringify({SHOWN}) === JSON.stringify(ids)"


# Set before the compare view opens: window.compareShown resolves, at the moment the view marks itself shown, with
# the charts then drawn and those then in the window (by their metric), and the number of charts.
WATCH_SHOWN = """() => { window.compareShown = new Promise(resolve => {
  const observer = new MutationObserver(() => {
    if (document.querySelector('section.compare')?.dataset.rendered !== 'true') return;
    observer.disconnect();
    const charts = [...document.querySelectorAll('.compare-chart')];
    const inSight = e => { const r = e.getBoundingClientRect(); return r.bottom >= 0 && r.top <= innerHeight; };
    resolve({charts: charts.length, drawn: charts.filter(e => e.uplot).map(e => e.dataset.metric),
             in_sight: charts.filter(inSight).map(e => e.dataset.metric)});
  });
  observer.observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-rendered']});
}); }"""


def shown_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.jobId)")


def test_three_finished_runs_are_compared_curves_overlaid_charts_out_of_sight_drawn_later_differing_params_marked(
    tab: Page,  # noqa: F811  (the fixture imported above)
    client: httpx.Client,
) -> None:
    tag = f"compare-{uuid.uuid4().hex[:8]}"
    runs = three_named_runs(client, tag)
    by_id = {job["id"]: name for name, job in runs.items()}
    page = tab.page

    # The jobs table, filtered by the tag through the list route, shows exactly these three with their names.
    page.goto(f"{tab.api_url}/dashboard#/")
    page.fill("#tag-filter", tag)
    page.wait_for_function(SHOWS_EXACTLY, arg=sorted(by_id))
    names = page.eval_on_selector_all(
        "#jobs tbody tr", "rows => rows.map(r => [r.dataset.jobId, r.querySelector('.name').textContent])"
    )
    assert dict(names) == by_id

    # Sorting by a metric's column asks the list route, in its order; again for descending.
    for sort in ("metrics.loss.best", "-metrics.loss.best"):
        page.click('#jobs th[data-sort="metrics.loss.best"]')
        expected = [job["id"] for job in client.get("/v1/jobs", params={"tag": tag, "sort": sort}).json()["items"]]
        page.wait_for_function(SHOWS_IN_ORDER, arg=expected)
        assert shown_ids(page) == expected

    page.check("#select-all")
    assert page.inner_text("#compare-selected") == "Compare selected (3)"
    # A window too short for every chart: the view is shown with the charts in sight drawn and no others.
    page.set_viewport_size({"width": 1300, "height": 300})
    page.evaluate(WATCH_SHOWN)
    page.click("#compare-selected")
    shown = page.evaluate("() => window.compareShown")
    assert shown["drawn"] == shown["in_sight"] and shown["in_sight"], shown
    assert len(shown["drawn"]) < shown["charts"], shown
    # The last chart, scrolled to, is drawn with every run's curve; then every chart, the table and the scatter are.
    last = page.locator(".compare-chart").last
    last.scroll_into_view_if_needed()
    page.wait_for_function("e => e.uplot !== undefined", arg=last.element_handle())
    assert sorted(last.evaluate("e => e.uplot.series.slice(1).map(s => s.label)")) == sorted(RUNS)
    page.wait_for_selector('section.compare[data-complete="true"]', state="attached")

    comparison = client.get("/v1/jobs/compare", params={"ids": ",".join(by_id)}).json()
    charts = page.eval_on_selector_all(
        ".compare-chart",
        """els => els.map(e => ({
        metric: e.dataset.metric,
        series: e.uplot.series.slice(1).map(s => s.label),
        values: e.uplot.data.slice(1).map(ys => ys.filter(v => v !== null)),
        xs: e.uplot.data.slice(1).map(ys => e.uplot.data[0].filter((x, i) => ys[i] !== null))}))""",
    )
    # A chart per metric, each with a curve per run, named after the run, holding the run's epochs.
    assert sorted(chart["metric"] for chart in charts) == sorted(comparison["metric_names"])
    assert {"loss", "val_loss", "categorical_accuracy", "val_categorical_accuracy"} <= {c["metric"] for c in charts}
    for chart in charts:
        assert sorted(chart["series"]) == sorted(RUNS), chart["metric"]
        for label, values, xs in zip(chart["series"], chart["values"], chart["xs"], strict=True):
            history = runs[label]["history"][chart["metric"]]
            assert values == pytest.approx(history), (chart["metric"], label)
            assert xs == list(range(1, len(history) + 1))
    assert {label: len(values) for label, values in zip(charts[0]["series"], charts[0]["values"], strict=True)} == {
        "run-a": 3,
        "run-b": 3,
        "run-c": 2,
    }

    # The table of params and metrics: a row per run; the parameters that differ are marked, the others not.
    rows = page.eval_on_selector_all("#compare-table tbody tr", "rows => rows.map(r => r.dataset.jobId)")
    assert sorted(rows) == sorted(by_id)
    marked = set(page.eval_on_selector_all("#compare-table th.param.differs", "els => els.map(e => e.dataset.param)"))
    assert marked == set(comparison["differing_params"])
    assert {"optimizer.learning_rate", "fit.batch_size"} <= marked
    unmarked = set(
        page.eval_on_selector_all("#compare-table th.param:not(.differs)", "els => els.map(e => e.dataset.param)")
    )
    assert "optimizer" in unmarked and not unmarked & marked
    rates = page.eval_on_selector_all(
        '#compare-table tbody td.differs[data-param="optimizer.learning_rate"]',
        "els => els.map(e => [e.closest('tr').dataset.jobId, Number(e.textContent)])",
    )
    assert {by_id[job_id]: rate for job_id, rate in rates} == {name: rate for name, (rate, _) in RUNS.items()}
    page.check("#only-differing")
    assert set(page.eval_on_selector_all("#compare-table th.param", "els => els.map(e => e.dataset.param)")) == marked

    # One parameter against one metric: a point per run.
    page.select_option("#scatter-param", "optimizer.learning_rate")
    page.select_option("#scatter-metric", "val_loss")
    page.wait_for_function("document.querySelector('#scatter').dataset.points === '3'")
    assert sorted(page.eval_on_selector("#scatter", "e => e.uplot.series.slice(1).map(s => s.label)")) == sorted(RUNS)
