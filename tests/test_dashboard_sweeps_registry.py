"""The dashboard's sweep and registry views in a real browser (Debian's Chromium driven by Playwright) against the real
API and worker: a small sweep listed and opened, its trials sorted by objective, the best so far drawn and its trials
compared, linked from a trial's job; its best trial registered as a version, exported and verified, then the
registry's model, versions, aliases, the version's lineage and its export's parity figures as the page shows them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.seed import ref, wait_for_job
from tests.test_dashboard import Page, browser, tab  # noqa: F401  (the browser fixtures)
from tests.test_sweeps import base_job, ended, ids  # noqa: F401  (the sweep's model and dataset fixture)

RATE = "compile.optimizer.config.learning_rate"


@pytest.fixture(scope="module")
def sweep(api_url: str, ids: dict[str, str]) -> dict[str, Any]:  # noqa: F811  (the fixture imported above)
    """A random sweep of three two-epoch trials, ended: as GET /v1/sweeps/{id} answers it."""
    with httpx.Client(base_url=api_url, timeout=120) as client:
        created = client.post(
            "/v1/sweeps",
            json={
                "name": f"dash-{uuid.uuid4().hex[:6]}",
                "job": base_job(ids),
                "algorithm": "random",
                "seed": 4,
                "space": {RATE: {"log_uniform": [1e-3, 1e-1]}},
                "objective": {"metric": "val_loss", "direction": "minimize"},
                "budget": {"max_trials": 3, "max_concurrent": 3},
            },
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = client.get(f"/v1/sweeps/{created.json()['id']}").json()
            if ended(done):
                break
            time.sleep(0.5)
        assert done["status"] == "completed" and done["counts"] == {"succeeded": 3}, done
        assert len({t["objective"] for t in done["trials"]}) == 3, done["trials"]
        return done


def test_a_sweep_is_listed_its_trials_sort_by_objective_with_the_best_so_far_and_compared(
    tab: Page,  # noqa: F811  (the fixture imported above)
    client: httpx.Client,
    sweep: dict[str, Any],
) -> None:
    page = tab.page
    trials = sweep["trials"]

    # From the sweeps list to the sweep.
    page.goto(f"{tab.api_url}/dashboard#/sweeps")
    row = page.locator(f'#sweeps tr[data-sweep-id="{sweep["id"]}"]')
    assert row.locator(".name").inner_text() == sweep["name"]
    row.locator("a").click()
    page.wait_for_selector(f'section.sweep[data-sweep-id="{sweep["id"]}"][data-loaded="true"]')

    # The trials table, best first (val_loss is minimized), then in reverse and by trial number.
    def shown() -> list[tuple[int, str, str]]:
        return page.eval_on_selector_all(
            "#trials tbody tr",
            """rows => rows.map(r => [Number(r.dataset.trial),
            r.dataset.jobId, r.querySelector('.objective').dataset.objective])""",
        )

    by_objective = sorted(trials, key=lambda t: t["objective"])
    assert [(n, j) for n, j, _ in shown()] == [(t["number"], t["job_id"]) for t in by_objective]
    assert [float(o) for *_, o in shown()] == pytest.approx([t["objective"] for t in by_objective])
    assert page.eval_on_selector("#trials tr.best-trial", "r => Number(r.dataset.trial)") == sweep["best"]["number"]
    assert sweep["best"]["number"] == by_objective[0]["number"]
    page.click('#trials th[data-sort="objective"]')
    assert [n for n, *_ in shown()] == [t["number"] for t in reversed(by_objective)]
    page.click('#trials th[data-sort="number"]')
    assert [n for n, *_ in shown()] == [0, 1, 2]
    rates = page.eval_on_selector_all(
        f'#trials td.param[data-param="{RATE}"]', "els => els.map(e => Number(e.textContent))"
    )
    assert rates == pytest.approx([t["params"][RATE] for t in sorted(trials, key=lambda t: t["number"])], rel=1e-3)

    # The objective of each trial, and the best so far: the running minimum in the order the trials were made.
    chart = page.eval_on_selector(
        "#best-so-far",
        """b => Object.fromEntries(b.uplot.series.slice(1).map((s, i) =>
        [s.label, b.uplot.data[0].map((x, j) => [x, b.uplot.data[i + 1][j]]).filter(([, y]) => y !== null)]))""",
    )
    in_order = sorted(trials, key=lambda t: t["number"])
    assert chart["objective"] == [[t["number"], pytest.approx(t["objective"])] for t in in_order]
    running = [min(t["objective"] for t in in_order[: i + 1]) for i in range(len(in_order))]
    assert chart["best so far"] == [
        [t["number"], pytest.approx(best)] for t, best in zip(in_order, running, strict=True)
    ]

    # The trials compared: a curve per trial on every metric, the learning rate marked as what differs.
    # (what is out of sight of the window is drawn after the view is shown)
    page.wait_for_selector('#sweep-compare section.compare[data-complete="true"]', state="attached")
    curves = page.eval_on_selector_all(
        "#sweep-compare .compare-chart",
        """els => els.map(e => [e.dataset.metric,
        e.uplot.series.length - 1])""",
    )
    assert {"loss", "val_loss"} <= {metric for metric, _ in curves} and all(n == 3 for _, n in curves)
    compared = page.eval_on_selector_all(
        "#sweep-compare #compare-table tbody tr", "rows => rows.map(r => r.dataset.jobId)"
    )
    assert sorted(compared) == sorted(t["job_id"] for t in trials)
    assert RATE in page.eval_on_selector_all("#sweep-compare th.param.differs", "els => els.map(e => e.dataset.param)")

    # A trial's job links back to its sweep, in the job list and in the job's own view.
    trial_job = trials[0]["job_id"]
    page.goto(f"{tab.api_url}/dashboard#/")
    page.wait_for_selector(f'#jobs tr[data-job-id="{trial_job}"] a.sweep-link')
    assert page.get_attribute(f'#jobs tr[data-job-id="{trial_job}"] a.sweep-link', "href") == f"#/sweeps/{sweep['id']}"
    page.goto(f"{tab.api_url}/dashboard#/jobs/{trial_job}")
    page.click("#job-sweep")
    page.wait_for_selector(f'section.sweep[data-sweep-id="{sweep["id"]}"][data-loaded="true"]')


def test_a_registered_version_shows_its_lineage_aliases_and_its_exports_parity(
    tab: Page,  # noqa: F811  (the fixture imported above)
    client: httpx.Client,
    sweep: dict[str, Any],
    ids: dict[str, str],  # noqa: F811  (the fixture imported above)
) -> None:
    name = f"dash-{uuid.uuid4().hex[:8]}"
    assert client.post("/v1/registry", json={"name": name, "description": "the sweep's best"}).status_code == 201
    made = client.post(f"/v1/registry/{name}/versions", json={"job_id": sweep["best"]["job_id"], "description": "best"})
    assert made.status_code == 201, made.text
    assert client.put(f"/v1/registry/{name}/aliases/champion", json={"version": 1}).status_code == 200
    export = client.post(
        f"/v1/registry/{name}/versions/1/exports",
        json={"format": "tf_saved_model", "sample": ref(ids["dataset"], "val_x")},
    )
    assert export.status_code == 201, export.text
    assert wait_for_job(client, export.json()["job_id"])["status"] == "succeeded"
    version = client.get(f"/v1/registry/{name}/versions/1").json()
    [exported] = client.get(f"/v1/registry/{name}/versions/1/exports").json()
    assert exported["verification"]["status"] == "verified", exported
    page = tab.page

    # The registry's list, the model's versions with their aliases, then the version.
    page.goto(f"{tab.api_url}/dashboard#/registry")
    page.wait_for_selector('section.registry[data-loaded="true"]')
    page.click(f'#registered-models tr[data-name="{name}"] a')
    page.wait_for_selector(f'section.registered-model[data-name="{name}"][data-loaded="true"]')
    versions = page.eval_on_selector_all(
        "#versions tbody tr",
        "rows => rows.map(r => [r.dataset.version, [...r.querySelectorAll('.alias')].map(a => a.dataset.alias)])",
    )
    assert versions == [["1", ["champion"]]]
    page.click('#versions tr[data-version="1"] a')
    page.wait_for_selector(f'section.model-version[data-name="{name}"][data-loaded="true"]')

    # Lineage: the job (a trial of the sweep), the datasets by sha256, the params, metrics and versions.
    lineage = version["lineage"]
    assert page.get_attribute("#lineage-job", "href") == f"#/jobs/{sweep['best']['job_id']}"
    assert page.eval_on_selector_all("#datasets tbody tr", "rows => rows.map(r => r.dataset.sha256)") == [
        d["sha256"] for d in lineage["datasets"]
    ]
    params = dict(
        page.eval_on_selector_all(
            "#params tbody tr", "rows => rows.map(r => [r.dataset.param, r.cells[1].textContent])"
        )
    )
    assert set(params) == set(lineage["params"])
    assert float(params[RATE]) == pytest.approx(lineage["params"][RATE], rel=1e-3)
    finals = dict(
        page.eval_on_selector_all(
            "#metrics tbody tr", "rows => rows.map(r => [r.dataset.metric, Number(r.cells[1].textContent)])"
        )
    )
    assert finals == pytest.approx({m: s["final"] for m, s in lineage["metrics"].items()}, rel=1e-3)
    trained = dict(page.eval_on_selector_all("#trained-with dd", "els => els.map(e => [e.dataset.key, e.textContent])"))
    for key in ("kerasd", "keras", "backend"):
        assert trained[key] == str(lineage["trained_with"][key]), key
    assert page.eval_on_selector_all("#artifacts tbody tr", "rows => rows.map(r => r.dataset.artifact)") == [
        a["name"] for a in version["artifacts"]
    ]

    # The export: verified, with the largest difference from Keras's predictions per output.
    row = f'#exports tr[data-export-job="{exported["job_id"]}"]'
    assert page.get_attribute(f"{row} .parity", "data-parity") == "verified"
    diffs = dict(
        page.eval_on_selector_all(
            f"{row} .max-abs-diff span", "els => els.map(e => [e.dataset.output, Number(e.dataset.diff)])"
        )
    )
    assert diffs == pytest.approx(exported["verification"]["max_abs_diff"])
