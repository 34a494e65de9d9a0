"""Runs as experiments, through the real API and worker: a fit's name, tags, params and metric summaries recorded
(and kept up to date while it trains), lists filtered by tags and name and sorted by metrics and params, runs with
different metrics compared, and a job renamed and retagged, never by another tenant."""

from __future__ import annotations

import random
import time

import pytest

from tests.holds import paused, step_until
from tests.runs import insert_run, model_of
from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, upload, wait_for_job
from tests.tenancy import keyed_client, make_tenant


@pytest.fixture(scope="module")
def api(keyed_api):
    return keyed_api[0]


@pytest.fixture()
def database(server_env):
    from app.core.database import session_scope

    return session_scope


def consistent(job: dict) -> None:
    """The job's metric summaries are what its history says at this moment."""
    assert set(job["metrics"]) == set(job["history"])
    for name, values in job["history"].items():
        summary = job["metrics"][name]
        pick = min if summary["goal"] == "min" else max
        assert summary["final"] == values[-1]
        assert summary["best"] == pick(values)
        assert summary["best_epoch"] == values.index(pick(values))


def test_a_fit_records_its_name_tags_params_and_metrics_as_its_epochs_come(api, keyed_worker):
    _tenant, key = make_tenant("record")
    with keyed_client(api, key) as client:
        dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()
        model = client.post("/v1/models", json=SEED_MODEL).json()
        request = fit_request(model["id"], dataset["id"], epochs=8, batch_size=10)
        request.update(name="adam-small", tags=["seed", "baseline", "seed"], notes="the tutorial's §3.2")
        request["callbacks"] = [{"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 20}},
                                {"class_name": "TensorBoard"}]
        created = client.post("/v1/jobs", json=request)
        assert created.status_code == 201, created.text
        job = created.json()
        assert (job["name"], job["tags"], job["notes"], job["sweep_id"]) == (
            "adam-small", ["baseline", "seed"], "the tutorial's §3.2", None)
        assert job["params"] == {
            "kind": "fit", "optimizer": "Adam", "optimizer.learning_rate": 0.001, "loss": "categorical_crossentropy",
            "metrics": "categorical_accuracy", "fit.epochs": 8, "fit.batch_size": 10, "fit.validation_split": 0.0,
            "fit.shuffle": True, "fit.initial_epoch": 0, "fit.validation_freq": 1,
            "callbacks.EarlyStopping.monitor": "val_loss", "callbacks.EarlyStopping.min_delta": 0.0,
            "callbacks.EarlyStopping.patience": 20, "callbacks.EarlyStopping.mode": "auto",
            "callbacks.EarlyStopping.restore_best_weights": False, "callbacks.EarlyStopping.start_from_epoch": 0,
            "callbacks.TensorBoard.histogram_freq": 0, "callbacks.TensorBoard.write_graph": True,
            "callbacks.TensorBoard.write_images": False, "callbacks.TensorBoard.write_steps_per_second": False,
            "callbacks.TensorBoard.update_freq": "epoch", "callbacks.TensorBoard.profile_batch": 0,
            "callbacks.TensorBoard.embeddings_freq": 0, "model.params": model["summary"]["total_params"],
            "model.trainable_params": model["summary"]["trainable_params"], "model.layers": 3, "data.rows": 1000,
            "data.validation_rows": 200, "seed": 7, "tuning": True, "resources.gpus": 0}

        # Every answer while it trains holds summaries that agree with the epochs in the same answer. The worker
        # is stopped between short slices of its time, so an answer between two epochs is read however fast it
        # trains.
        def read() -> dict:
            answer = client.get(f"/v1/jobs/{job['id']}").json()
            consistent(answer)
            return answer

        def first_epoch_or_end() -> dict | None:
            answer = read()
            return answer if answer["epochs"] or answer["status"] not in ("queued", "running") else None

        with paused(keyed_worker.popen.pid) as run_for:
            job = step_until(run_for, first_epoch_or_end, timeout_s=300, what="the fit's first epoch recorded")
            assert job["status"] == "running" and 0 < len(job["epochs"]) < 8, job
        while job["status"] in ("queued", "running"):
            job = read()
            time.sleep(0.05)
        assert job["status"] == "succeeded", job["error"]
        assert set(job["metrics"]) == {"loss", "categorical_accuracy", "val_loss", "val_categorical_accuracy"}
        assert job["metrics"]["val_categorical_accuracy"]["goal"] == "max"
        assert job["metrics"]["val_loss"]["goal"] == "min"

        # The list finds it by its tags (all of them) and its name's prefix, and shows the same summaries.
        for query in ({"tag": ["seed", "baseline"]}, {"name": "adam-"}, {"tag": "seed", "status": "succeeded"}):
            listed = client.get("/v1/jobs", params=query).json()["items"]
            assert [item["id"] for item in listed] == [job["id"]]
            assert listed[0]["metrics"] == job["metrics"] and listed[0]["params"] == job["params"]
        for query in ({"tag": ["seed", "other"]}, {"name": "adam-big"}, {"name": "Adam"}):
            assert client.get("/v1/jobs", params=query).json()["items"] == []

        # An evaluate job's metrics are its evaluation, with no epoch.
        evaluated = client.post("/v1/jobs", json={"kind": "evaluate", "source_job_id": job["id"], "name": "eval",
                                                  "evaluate": request["fit"]["validation_data"]})
        assert evaluated.status_code == 201, evaluated.text
        evaluated = wait_for_job(client, evaluated.json()["id"])
        assert evaluated["status"] == "succeeded", evaluated["error"]
        values = evaluated["result"]["evaluation"]["metrics"]
        assert evaluated["metrics"] == {name: {"final": value, "best": value, "best_epoch": None,
                                               "goal": "max" if "accuracy" in name else "min"}
                                        for name, value in values.items()}
        assert evaluated["params"]["kind"] == "evaluate" and evaluated["params"]["data.rows"] == 200


def _fifty_runs(session, tenant_id: str, model_id: str, rng: random.Random) -> list[dict]:
    """50 finished runs: some without validation, a few with a schedule in place of a number, tags a and b."""
    runs = []
    for index in range(50):
        losses = [rng.uniform(0.2, 2.0) for _ in range(3)]
        logs = [{"loss": value, "accuracy": rng.random()} for value in losses]
        if index % 5:
            for item in logs:
                item["val_loss"] = rng.uniform(0.2, 2.0)
        rate = "ExponentialDecay" if index % 7 == 0 else (None if index % 11 == 0 else rng.choice([1e-3, 3e-3, 1e-2]))
        params = {"optimizer": "Adam", **({"optimizer.learning_rate": rate} if rate is not None else {})}
        tags = ["a"] * (index % 2 == 0) + ["b"] * (index % 3 == 0)
        name = f"run-{index:02d}" if index % 4 else None
        job_id = insert_run(session, tenant_id, model_id, name=name, tags=tags, params=params, epochs=logs)
        runs.append({"id": job_id, "name": name, "tags": tags, "params": params, "logs": logs})
    return runs


def _every_page(client, **query) -> list[dict]:
    items, page = [], client.get("/v1/jobs", params={"limit": 7, **query}).json()
    while True:
        items += page["items"]
        if page["next"] is None:
            return items
        page = client.get(page["next"]).json()


def _in_order(runs: list[dict], value, *, descending: bool) -> list[str]:
    """Ids in the API's order: runs with a value by it (ties by id), then the rest newest first."""
    valued = [run for run in runs if value(run) is not None]
    valued.sort(key=lambda run: (value(run), run["id"]), reverse=descending)
    rest = [run["id"] for run in reversed(runs) if value(run) is None]
    return [run["id"] for run in valued] + rest


def test_fifty_runs_sort_by_metrics_and_params_and_filter_by_tags_a_page_at_a_time(api, database):
    tenant_id, key = make_tenant("sorts")
    with database() as session:
        runs = _fifty_runs(session, tenant_id, model_of(session, tenant_id), random.Random(5))
    best_val = lambda run: min(logs["val_loss"] for logs in run["logs"]) if "val_loss" in run["logs"][0] else None  # noqa: E731
    final_acc = lambda run: run["logs"][-1]["accuracy"]  # noqa: E731
    with keyed_client(api, key) as client:
        sorted_by = _every_page(client, sort="metrics.val_loss.best")
        assert [item["id"] for item in sorted_by] == _in_order(runs, best_val, descending=False)
        assert [item["metrics"].get("val_loss", {}).get("best") for item in sorted_by[:40]] == sorted(
            best_val(run) for run in runs if best_val(run) is not None)
        assert [item["id"] for item in _every_page(client, sort="-metrics.accuracy.final")] == _in_order(
            runs, final_acc, descending=True)
        # A tag filter keeps the sort; two tags are both required.
        tagged = [run for run in runs if {"a", "b"} <= set(run["tags"])]
        assert [item["id"] for item in _every_page(client, sort="-metrics.val_loss.best", tag=["a", "b"])] == (
            _in_order(tagged, best_val, descending=True))
        # A param: numbers first, then texts, then the runs without it.
        rate = lambda run: run["params"].get("optimizer.learning_rate")  # noqa: E731
        numbers = [run for run in runs if isinstance(rate(run), float)]
        texts = [run for run in runs if isinstance(rate(run), str)]
        expected = (_in_order(numbers, rate, descending=False) + _in_order(texts, rate, descending=False)
                    + [run["id"] for run in reversed(runs) if rate(run) is None])
        assert [item["id"] for item in _every_page(client, sort="params.optimizer.learning_rate")] == expected
        named = _every_page(client, sort="-name")
        assert [item["name"] for item in named] == sorted((run["name"] for run in runs if run["name"]),
                                                          reverse=True) + [None] * 13
        # Counts and prefixes.
        page = client.get("/v1/jobs", params={"tag": "b", "total": "exact", "limit": 3}).json()
        assert page["total"] == sum("b" in run["tags"] for run in runs)
        assert len(_every_page(client, name="run-1")) == 8  # run-10 .. run-19 but for the unnamed 12 and 16

        # A cursor belongs to its sort; a sort that is not one is said so.
        cursor = client.get("/v1/jobs", params={"limit": 2, "sort": "metrics.loss.best"}).json()["next_cursor"]
        other = client.get("/v1/jobs", params={"limit": 2, "sort": "metrics.loss.final", "cursor": cursor})
        assert other.status_code == 422 and other.json()["field"] == "cursor"
        for bad in ("metrics.loss", "loss", "params.", "-metrics.loss.worst"):
            answer = client.get("/v1/jobs", params={"sort": bad})
            assert answer.status_code == 422 and answer.json()["field"] == "sort", bad


def test_the_lists_query_parameters_are_checked_each_by_name_as_documented(api):
    _tenant, key = make_tenant("query")
    with keyed_client(api, key) as client:
        answer = client.get("/v1/jobs", params={"limit": 0, "status": "bogus", "created_after": "123",
                                                "tag": ["a", "b"], "offset": "x", "unknown": "ignored"})
        assert answer.status_code == 422
        errors = {error["field"]: (error["in"], error["message"]) for error in answer.json()["errors"]}
        assert errors == {
            "limit": ("query", "Input should be greater than or equal to 1"),
            "offset": ("query", "Input should be a valid integer, unable to parse string as an integer"),
            "status": ("query", "String should match pattern '^(queued|running|succeeded|failed|cancelled|pruned)$'"),
            "created_after": ("query", "Value error, an ISO 8601 date or time, such as 2026-12-01 or "
                                       "2026-12-01T10:00:00Z")}
        # Repeated tags, the deprecated offset and defaults: a valid query is answered.
        page = client.get("/v1/jobs", params={"tag": ["a", "b"], "offset": 1, "limit": "500"})
        assert page.status_code == 200 and page.json()["items"] == [] and page.json()["limit"] == 500


def test_runs_with_different_metrics_compare_side_by_side(api, database):
    tenant_id, key = make_tenant("compare")
    other_tenant, _other_key = make_tenant("compare-other")
    with database() as session:
        model_id = model_of(session, tenant_id)
        first = insert_run(session, tenant_id, model_id, name="adam", tags=["c"],
                           params={"optimizer": "Adam", "optimizer.learning_rate": 0.001, "fit.batch_size": 32},
                           epochs=[{"loss": 1.0, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.7, "val_loss": 0.6},
                                   {"loss": 0.7, "accuracy": 0.6}])
        second = insert_run(session, tenant_id, model_id, name="sgd",
                            params={"optimizer": "SGD", "optimizer.learning_rate": 0.01, "fit.batch_size": 32},
                            epochs=[{"loss": 2.0, "auc": 0.6}, {"loss": 1.5, "auc": 0.8}])
        third = insert_run(session, tenant_id, model_id, name="evaluated", kind="evaluate",
                           params={"fit.batch_size": 32}, evaluation={"loss": 0.4, "auc": 0.9})
        foreign = insert_run(session, other_tenant, model_of(session, other_tenant), name="theirs")
    with keyed_client(api, key) as client:
        answer = client.get("/v1/jobs/compare", params={"ids": f"{second},{first},{third},{first}"})
        assert answer.status_code == 200, answer.text
        compared = answer.json()
        assert [run["id"] for run in compared["runs"]] == [second, first, third]
        assert compared["metric_names"] == ["accuracy", "auc", "loss", "val_loss"]
        assert compared["param_names"] == ["fit.batch_size", "optimizer", "optimizer.learning_rate"]
        assert compared["differing_params"] == ["optimizer", "optimizer.learning_rate"]
        by_id = {run["id"]: run for run in compared["runs"]}
        assert by_id[first]["history"] == {"accuracy": [0.5, 0.7, 0.6], "loss": [1.0, 0.5, 0.7],
                                           "val_loss": [None, 0.6, None]}
        assert by_id[first]["metrics"]["loss"] == {"final": 0.7, "best": 0.5, "best_epoch": 1, "goal": "min"}
        assert by_id[first]["metrics"]["accuracy"] == {"final": 0.6, "best": 0.7, "best_epoch": 1, "goal": "max"}
        assert by_id[second]["metrics"]["auc"] == {"final": 0.8, "best": 0.8, "best_epoch": 1, "goal": "max"}
        assert by_id[third]["history"] == {} and by_id[third]["metrics"]["auc"]["best_epoch"] is None
        assert (by_id[first]["name"], by_id[first]["tags"], by_id[first]["kind"]) == ("adam", ["c"], "fit")

        # Ids that are not the caller's jobs are named in the 404, whoever owns them.
        unknown = "0" * 32
        missing = client.get("/v1/jobs/compare", params={"ids": f"{first},{foreign},{unknown}"})
        assert missing.status_code == 404 and missing.json()["ids"] == [foreign, unknown]
        assert foreign in missing.json()["detail"]
        assert client.get("/v1/jobs/compare", params={"ids": ","}).status_code == 422
        too_many = ",".join(f"{index:032x}" for index in range(501))
        assert client.get("/v1/jobs/compare", params={"ids": too_many}).status_code == 422
        five_hundred = ",".join([first] + [f"{index:032x}" for index in range(499)])
        assert client.get("/v1/jobs/compare", params={"ids": five_hundred}).status_code == 404


def test_a_job_is_renamed_retagged_and_annotated_only_by_its_tenant(api, database):
    tenant_id, key = make_tenant("patch")
    _other, other_key = make_tenant("patch-other")
    with database() as session:
        job_id = insert_run(session, tenant_id, model_of(session, tenant_id), name="first", tags=["x", "y"])
    with keyed_client(api, key) as client, keyed_client(api, other_key) as other:
        assert other.patch(f"/v1/jobs/{job_id}", json={"name": "stolen"}).status_code == 404
        assert other.get("/v1/jobs", params={"tag": "x"}).json()["items"] == []
        changed = client.patch(f"/v1/jobs/{job_id}", json={"name": " second ", "add_tags": ["z"],
                                                           "remove_tags": ["x"], "notes": "lr too high"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["name"], changed.json()["tags"], changed.json()["notes"]) == (
            "second", ["y", "z"], "lr too high")
        assert [item["id"] for item in client.get("/v1/jobs", params={"tag": "z"}).json()["items"]] == [job_id]
        assert client.get("/v1/jobs", params={"tag": "x"}).json()["items"] == []
        replaced = client.patch(f"/v1/jobs/{job_id}", json={"tags": [], "notes": None}).json()
        assert (replaced["name"], replaced["tags"], replaced["notes"]) == ("second", [], None)
        assert client.patch(f"/v1/jobs/{job_id}", json={"name": None}).json()["name"] is None
        for bad in ({}, {"tags": ["a"], "add_tags": ["b"]}, {"name": "two\nlines"}, {"tags": ["t"] * 51},
                    {"tags": [""]}, {"color": "red"}):
            assert client.patch(f"/v1/jobs/{job_id}", json=bad).status_code == 422, bad
        assert client.patch("/v1/jobs/" + "0" * 32, json={"name": "n"}).status_code == 404
    with database() as session:
        from sqlalchemy import text

        assert session.execute(text("SELECT count(*) FROM job_tags WHERE job_id = :j"), {"j": job_id}).scalar() == 0


def test_a_job_is_renamed_while_a_workers_claim_holds_its_tenant_without_waiting_for_it_or_deadlocking(api, database):
    # A worker's claim locks the tenant's row, then writes the row of the job it takes. A PATCH holds the job's row
    # and writes it twice, and PostgreSQL checks the second write's tenant key again (the row version is its own):
    # that check must not wait for the claim's lock, or the two deadlock and PostgreSQL cancels one (a 503).
    from sqlalchemy import text

    from app.core.repositories import tenants

    tenant_id, key = make_tenant("claimed")
    with database() as session:
        job_id = insert_run(session, tenant_id, model_of(session, tenant_id), name="before")
    with database() as claim, keyed_client(api, key) as client:
        tenants.lock_tenant(claim, tenant_id=tenant_id)  # held until this block commits, as a claim holds it
        # The deadline bounds a PATCH that waits for the claim's lock: it would wait for as long as the lock is held.
        changed = client.patch(f"/v1/jobs/{job_id}", json={"name": "after", "add_tags": ["held"]}, timeout=30)
        assert changed.status_code == 200, changed.text
        assert (changed.json()["name"], changed.json()["tags"]) == ("after", ["held"])
        # Then the claim writes the job's row: the PATCH has committed, so nothing waits.
        claim.execute(text("UPDATE jobs SET lease_owner = 'a-claim' WHERE id = :id"), {"id": job_id})
    with database() as session:
        assert session.execute(text("SELECT name, lease_owner FROM jobs WHERE id = :id"), {"id": job_id}).one() == (
            "after", "a-claim")


def test_the_lists_comparisons_and_summaries_on_sqlite(tmp_path):
    """What `kerasd up` runs on: the same questions on SQLite migrated to head, an epoch recorded again included."""
    from sqlalchemy.orm import sessionmaker

    from app.core.database import make_engine
    from app.core.migrate import upgrade_to_head
    from app.core.repositories import jobs as worker_questions
    from app.core.sql import ask
    from app.experiments import repository as experiments
    from app.experiments import service as comparing
    from app.jobs import listing
    from tests.runs import tenant_and_model

    url = f"sqlite:///{tmp_path / 'kerasd.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    try:
        with sessionmaker(engine, expire_on_commit=False)() as session:
            tenant_id, model_id = tenant_and_model(session)
            rng = random.Random(9)
            runs = _fifty_runs(session, tenant_id, model_id, rng)
            # A resumed attempt records epoch 1 again, worse: the summary is made again from every epoch.
            worker_questions.record_epoch(session, job_id=runs[0]["id"], epoch=1, attempt=2,
                                          logs={"loss": 9.0, "accuracy": 0.0})
            runs[0]["logs"][1] = {"loss": 9.0, "accuracy": 0.0}
            session.commit()

            def every(filters, sort):
                found, after = [], None
                while True:
                    items, after = ask(session, listing.page(filters, listing.Sort.parse(sort), limit=7, after=after))
                    found += items
                    if after is None:
                        return [item.id for item in found]

            final_loss = lambda run: run["logs"][-1]["loss"]  # noqa: E731
            best_loss = lambda run: min(logs["loss"] for logs in run["logs"])  # noqa: E731
            assert every(listing.Filters(tenant_id), "metrics.loss.final") == _in_order(runs, final_loss,
                                                                                        descending=False)
            tagged = [run for run in runs if "a" in run["tags"]]
            assert every(listing.Filters(tenant_id, tags=("a",)), "-metrics.loss.best") == _in_order(
                tagged, best_loss, descending=True)
            assert every(listing.Filters(tenant_id, name="run-4"), "name") == [
                run["id"] for run in sorted((run for run in runs if (run["name"] or "").startswith("run-4")),
                                            key=lambda run: run["name"])]
            document = ask(session, listing.page(listing.Filters(tenant_id, tags=("a", "b")), listing.NEWEST_FIRST,
                                                 limit=50))[0][-1]
            losses = [logs["loss"] for logs in runs[0]["logs"]]
            assert (document.id, document.metrics["loss"].best) == (runs[0]["id"], min(losses))
            assert document.metrics["loss"].best_epoch == losses.index(min(losses))
            assert document.metrics["accuracy"].final == runs[0]["logs"][-1]["accuracy"]

            wanted = [runs[1]["id"], runs[0]["id"]]
            compared = comparing.comparison(
                wanted, ask(session, experiments.runs(tenant_id=tenant_id, ids=wanted)),
                ask(session, experiments.run_metrics(tenant_id=tenant_id, ids=wanted)),
                ask(session, experiments.run_epochs(tenant_id=tenant_id, ids=wanted)))
            assert [run["id"] for run in compared["runs"]] == wanted
            assert compared["runs"][1]["history"]["loss"] == [logs["loss"] for logs in runs[0]["logs"]]
            assert compared["metric_names"] == ["accuracy", "loss", "val_loss"]
    finally:
        engine.dispose()
