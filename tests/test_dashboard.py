"""The pages in a real browser: Debian's headless Chromium driven by Playwright, against the real API.

scripts/test installs `chromium` with apt-get when it is missing; Playwright only drives it (its own
browser downloads are never used).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.holds import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser tab that records page errors and every request that leaves the API's origin."""

    def __init__(self, browser: Any, api_url: str) -> None:
        self.api_url = api_url
        self.context = browser.new_context(viewport={"width": 1300, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if not request.url.startswith((self.api_url, "data:", "blob:")):
            self.foreign.append(request.url)

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def tab(browser: Any, api_url: str) -> Iterator[Page]:
    page = Page(browser, api_url)
    try:
        yield page
    finally:
        page.close()
    assert not page.errors, page.errors
    assert not page.foreign, f"the page fetched from elsewhere: {page.foreign}"


def test_docs_are_served_locally_and_try_it_out_runs_get_version(tab: Page) -> None:
    page = tab.page
    page.goto(f"{tab.api_url}/docs")
    operation = page.locator(".opblock-get", has=page.locator('.opblock-summary-path[data-path="/version"]'))
    operation.locator(".opblock-summary-control").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    response = operation.locator(".live-responses-table .response")
    response.wait_for()
    assert response.locator(".response-col_status").first.inner_text().strip() == "200"
    body = json.loads(operation.locator(".live-responses-table .response-col_description pre").first.inner_text())
    assert body["kerasd"] and body["keras"].startswith("3.") and body["backend"]


def chart_points(page: Any) -> int:
    return sum(page.eval_on_selector_all(".chart", "els => els.map(e => Number(e.dataset.points))"))


def start_seed_job(page: Any, api_url: str, **fit: Any) -> str:
    """The dashboard's New job form, prefilled with the tutorial's §3.2 job; `fit` overrides arguments."""
    page.goto(f"{api_url}/dashboard#/new")
    request = json.loads(page.input_value("#job-request"))
    assert request["fit"]["epochs"] == 10 and request["fit"]["batch_size"] == 100  # the tutorial's §3.2
    assert json.loads(page.input_value("#model-spec"))["layers"][0] == {"class_name": "Dense", "units": 32,
                                                                         "activation": "relu"}
    request["fit"].update(fit)
    page.fill("#job-request", json.dumps(request, indent=2))
    page.click("#start-job")
    # Starting uploads the data set and checks the model in the spec checker's sandbox before the job is
    # submitted: at load 12-17 on 2 cores that took over the page's 60 s default, so the wait is the server's.
    page.wait_for_url(re.compile(r".*/dashboard#/jobs/[0-9a-f]{32}$"), timeout=240_000)
    return page.url.rsplit("/", 1)[1]


def status_of(page: Any) -> str:
    return page.get_attribute("#job-status .status", "data-status") or ""


def test_dashboard_trains_the_seed_job_live_and_cancels_another(tab: Page, client: httpx.Client) -> None:
    page = tab.page
    # The §3.2 job with more, smaller batches, followed to its end.
    job_id = start_seed_job(page, tab.api_url, epochs=20, batch_size=10)
    page.wait_for_function("['succeeded', 'failed', 'cancelled'].includes("
                           "document.querySelector('#job-status .status')?.dataset.status)", timeout=300_000)
    assert status_of(page) == "succeeded", page.inner_text("#job-error")
    page.wait_for_function("document.querySelectorAll('#epochs tbody tr').length === 20")
    assert page.eval_on_selector_all(".chart", "els => els.map(e => e.dataset.metric)") == [
        "loss", "categorical_accuracy"]
    val_points = page.get_attribute('.chart[data-metric="loss"] .series-val', "data-points")
    assert val_points == "20"
    page.wait_for_selector("#artifacts a")
    links = page.eval_on_selector_all("#artifacts a", "els => els.map(a => [a.textContent, a.href])")
    assert "weights.h5" in dict(links)
    download = page.request.get(dict(links)["weights.h5"])
    assert download.status == 200 and download.body()[:8] == b"\x89HDF\r\n\x1a\n"
    history = client.get(f"/v1/jobs/{job_id}").json()["history"]
    last_row = page.eval_on_selector_all("#epochs tbody tr:last-child td", "els => els.map(e => e.textContent)")
    assert last_row[0] == "20" and float(last_row[1]) == pytest.approx(history["loss"][-1], rel=1e-3)

    # A second job that trains until it is cancelled from its page.
    long_job = start_seed_job(page, tab.api_url, epochs=100_000)
    page.wait_for_function("document.querySelector('#job-status .status')?.dataset.status === 'running'")
    page.wait_for_function("[...document.querySelectorAll('.chart')].some(e => Number(e.dataset.points) > 0)")
    # The curve gains points while the job is running, not just once at the end.
    running: list[int] = []

    def grown_three_times() -> bool:
        assert status_of(page) == "running", page.inner_text("#job-error")
        running.append(chart_points(page))
        return len(set(running)) >= 3

    wait_until(grown_three_times, timeout_s=300, what="the running job's curve gaining points")
    assert running == sorted(running), running
    # A third job waits behind it; the job list shows where it stands in the queue.
    queued = client.post("/v1/jobs", json=client.get(f"/v1/jobs/{job_id}").json()["request"]).json()
    expected_position = client.get(f"/v1/jobs/{queued['id']}").json().get("queue_position")
    page.goto(f"{tab.api_url}/dashboard#/")
    row = page.locator(f'tr[data-job-id="{queued["id"]}"]')
    row.wait_for()
    assert row.locator(".status").inner_text() == "queued"
    assert row.locator(".queue-position").inner_text() == ("—" if expected_position is None else str(expected_position))
    running_row = page.locator(f'tr[data-job-id="{long_job}"]')
    page.wait_for_function(f"document.querySelector('tr[data-job-id=\"{long_job}\"] .progress')?.textContent"
                           "?.includes('epoch')")
    assert running_row.locator(".status").inner_text() == "running"

    running_row.locator("a").click()
    page.wait_for_function("document.querySelector('#job-status .status')?.dataset.status === 'running'")
    page.click("#cancel-job")
    page.wait_for_function("document.querySelector('#job-status .status')?.dataset.status === 'cancelled'")
    assert client.get(f"/v1/jobs/{long_job}").json()["status"] == "cancelled"
    page.wait_for_selector("#event-log .event-cancelled")
    assert page.is_hidden("#cancel-job") and page.is_hidden("#flash")
    client.post(f"/v1/jobs/{queued['id']}/cancel")


def test_every_route_is_tagged_and_described_and_the_docs_page_is_local(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    described_tags = {tag["name"] for tag in schema["tags"] if tag.get("description")}
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not (operation.get("tags") and operation.get("summary") and operation.get("description")):
                missing.append(f"{method.upper()} {path}")
            assert set(operation.get("tags", [])) <= described_tags, (path, operation.get("tags"))
    assert not missing, f"routes without tags, summary or description: {missing}"
    events_doc = schema["paths"]["/v1/jobs/{job_id}/events"]["get"]["description"]
    for event_type in ("queued", "started", "batch", "epoch", "checkpoint", "log", "finished", "failed",
                       "cancelled", "Last-Event-ID", "retry"):
        assert f"`{event_type}" in events_doc, event_type
    page = client.get("/docs").text
    assert "swagger-ui-bundle.js" in page and "http://" not in page and "https://" not in page
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_dashboard_with_a_slash_and_the_docs_oauth2_redirect(client: httpx.Client) -> None:
    """/dashboard/ sends the browser to /dashboard by a relative address (right behind a path prefix too), and
    Swagger UI's OAuth2 pop-up page is served where /docs tells Swagger UI it is."""
    slash = client.get("/dashboard/", follow_redirects=False)
    assert slash.status_code == 307 and slash.headers["location"] == "../dashboard"
    followed = client.get("/dashboard/", follow_redirects=True)
    page = client.get("/dashboard")
    assert followed.url.path == "/dashboard" and followed.status_code == 200
    assert followed.headers["content-type"].startswith("text/html") and followed.text == page.text
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in client.get("/docs").text
    redirect = client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and redirect.headers["content-type"].startswith("text/html")
    assert "window.opener.swaggerUIRedirectOauth2" in redirect.text


def test_the_tutorial_examples_in_the_docs_run(client: httpx.Client) -> None:
    """Every request example of POST /v1/models and POST /v1/jobs, sent as it is to the running API."""
    from app.system.api_docs import _ID
    from tests.seed import npz_bytes, seed_arrays, upload, wait_for_job

    schema = client.get("/openapi.json").json()

    def examples(path: str) -> dict[str, Any]:
        found = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert all(re.match(r"^§\d", example["summary"]) for example in found.values())
        return {name: example["value"] for name, example in found.items()}

    models = {}
    for name, spec in examples("/v1/models").items():
        response = client.post("/v1/models", json=spec)
        assert response.status_code == 201, (name, response.text)
        models[name] = response.json()["id"]
    dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()["id"]

    jobs = examples("/v1/jobs")
    # Fits first: the evaluate and predict examples use a trained job's model.
    ordered = sorted(jobs, key=lambda name: jobs[name]["kind"] != "fit")
    trained = None
    for name in ordered:
        text = json.dumps(jobs[name])
        text = text.replace(f'"model_id": "{_ID}"', f'"model_id": "{models["tutorial_2_1"]}"')
        text = text.replace(f'"source_job_id": "{_ID}"', f'"source_job_id": "{trained}"').replace(_ID, dataset)
        response = client.post("/v1/jobs", json=json.loads(text))
        assert response.status_code == 201, (name, response.text)
        job = wait_for_job(client, response.json()["id"])
        assert job["status"] == "succeeded", (name, job["error"])
        if name == "tutorial_3_2":
            trained = job["id"]


def test_the_readme_states_the_event_contract_the_api_documents() -> None:
    from app.core.events import CONTRACT_MARKDOWN

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert CONTRACT_MARKDOWN.strip() in readme


def test_dashboard_on_a_server_that_requires_keys(browser: Any, keyed_api: tuple[str, Any]) -> None:
    """Every call carries the tab's key: the list, the §3.2 job, its event stream and an artifact download."""
    from tests.tenancy import make_tenant

    url = keyed_api[0]
    _tenant, key = make_tenant("dashboard")
    tab = Page(browser, url)
    try:
        page = tab.page
        page.goto(f"{url}/dashboard#/")
        page.wait_for_selector("#flash:not([hidden])")
        assert "API key" in page.inner_text("#flash")
        page.click("#api-key-button")
        page.fill("#api-key", key)
        page.click("#api-key-form button[type=submit]")
        page.wait_for_selector("#jobs-empty:not([hidden])")  # a new tenant has no jobs
        assert page.is_hidden("#flash")

        job_id = start_seed_job(page, url)  # the tutorial's §3.2 job as it is
        page.wait_for_function("document.querySelector('#job-status .status')?.dataset.status === 'succeeded'",
                               timeout=300_000)
        page.wait_for_function("document.querySelectorAll('#epochs tbody tr').length === 10")
        assert chart_points(page) > 20  # 10 epochs and 10 validation points per chart, and batches
        page.wait_for_selector("#artifacts a[data-artifact]")
        with page.expect_download() as download:
            page.click('#artifacts a[download="weights.h5"]')
        saved = Path(download.value.path()).read_bytes()
        assert saved[:8] == b"\x89HDF\r\n\x1a\n"
        # The job is the tenant's own: its key reads it, and the API refuses the job without one.
        with httpx.Client(base_url=url, timeout=30) as anonymous:
            assert anonymous.get(f"/v1/jobs/{job_id}").status_code == 401
        assert not tab.errors and not tab.foreign, (tab.errors, tab.foreign)
    finally:
        tab.close()
