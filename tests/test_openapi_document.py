"""The OpenAPI document as client generators read it, and its compatibility with the committed copy.

Built in this process by the code that serves it (tests/test_openapi_fuzz.py checks that the running API serves
the same document); no services are needed.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from app.http.openapi_compat import breaking_changes
from app.http.openapi_snapshot import CHANGELOG, SNAPSHOT, render, served_document, unannounced_breaks

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return served_document()


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{method.upper()} {path}", operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_every_operation_has_a_short_unique_camel_case_id(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, operation in operations(document)]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", op_id) and len(op_id) <= 24 for op_id in ids), ids
    assert {"createModel", "listModels", "createDataset", "createJob", "listJobs", "getJob", "getJobEvents",
            "cancelJob", "retryJob", "listArtifacts", "getArtifact", "getHealth"} <= set(ids)


def test_every_error_response_references_the_one_problem_component(document: dict[str, Any]) -> None:
    errors = 0
    for where, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and "content" in response:
                # /ready's 503 is its own report of the checks, as it always was.
                if where == "GET /ready":
                    continue
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (where, status)
                errors += 1
    assert errors > 100
    problem = document["components"]["schemas"]["Problem"]
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ProblemFieldError"}
    assert {"type", "title", "status", "detail"} <= set(problem["required"])


def test_every_body_is_a_named_component(document: dict[str, Any]) -> None:
    """JSON bodies are references to components, or lists of them (no inline copies); files and text are strings."""
    names = set(document["components"]["schemas"])
    assert not [name for name in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name)], sorted(names)
    for where, operation in operations(document):
        bodies = [("request", media, content) for media, content in
                  operation.get("requestBody", {}).get("content", {}).items()]
        bodies += [(status, media, content) for status, response in operation["responses"].items()
                   for media, content in response.get("content", {}).items()]
        for status, media, content in bodies:
            schema = content.get("schema", {})
            if media == "text/html" or schema.get("type") == "string":
                continue
            if where == "GET /v1/models/{model_id}/architecture":
                continue  # Keras's own config, whatever the model: an object of no fixed shape
            if schema.get("type") == "array":  # a list of a component (GET /v1/jobs/{job_id}/artifacts)
                schema = schema["items"]
            assert set(schema) == {"$ref"}, (where, status, media, schema)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    found = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document))
    assert found and set(found) <= set(schemas), set(found) - set(schemas)


def test_spec_forms_and_pipeline_ops_are_unions_with_a_discriminator(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for union, field, tags in (("ModelSpec", "type", {"sequential", "functional", "plugin_model", "keras_json",
                                                      "yaml"}),
                               ("PipelineOp", "op", {"batch", "shuffle", "repeat", "prefetch"})):
        mapping = schemas[union]["discriminator"]["mapping"]
        assert schemas[union]["discriminator"]["propertyName"] == field and set(mapping) == tags
        assert sorted(mapping.values()) == sorted(ref["$ref"] for ref in schemas[union]["oneOf"])
        for tag, ref in mapping.items():
            assert schemas[ref.rsplit("/", 1)[-1]]["properties"][field]["const"] == tag
    fit_x = {ref["$ref"].rsplit("/", 1)[-1] for ref in schemas["FitSpec"]["properties"]["x"]["anyOf"]}
    assert fit_x == {"ArrayRef", "ArrayList", "ArraysByName", "Pipeline"}


def test_the_event_stream_is_text_event_stream_of_job_events(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]
    stream = responses["200"]["content"]["text/event-stream"]
    assert stream["schema"]["type"] == "string"
    assert stream["x-item-schema"] == {"$ref": "#/components/schemas/JobEvent"}
    event = document["components"]["schemas"]["JobEvent"]
    assert {"id", "v", "type", "job_id", "attempt", "ts", "data"} <= set(event["properties"])
    assert "204" in responses


def test_the_committed_document_is_the_served_one(document: dict[str, Any], committed: dict[str, Any]) -> None:
    assert render(document) == render(committed), "not current: run python -m app.http.openapi_snapshot"


def test_no_change_breaks_a_client_of_the_committed_document(document: dict[str, Any],
                                                              committed: dict[str, Any]) -> None:
    breaks = unannounced_breaks(committed, document, CHANGELOG.read_text())
    assert not breaks, "\n".join(breaks)


def test_the_document_version_has_its_changelog_section(document: dict[str, Any]) -> None:
    assert f"## {document['info']['version']}" in CHANGELOG.read_text()


# The comparison itself, on copies of the committed document changed as a later version might change it.

def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def _changed(committed: dict[str, Any], change: Any) -> list[str]:
    new = copy.deepcopy(committed)
    change(new)
    return breaking_changes(committed, new)


def test_additions_break_no_client(committed: dict[str, Any]) -> None:
    def add(new: dict[str, Any]) -> None:
        new["paths"]["/v1/things"] = {"get": {"operationId": "listThings", "responses": {"200": {
            "description": "things", "content": {"application/json": {"schema": {"type": "array"}}}}}}}
        _schema(new, "JobOut")["properties"]["next"] = {"type": "string"}
        _schema(new, "FitSpec")["properties"]["new_option"] = {"type": "integer"}
        new["paths"]["/v1/jobs"]["get"]["parameters"].append(
            {"name": "since", "in": "query", "required": False, "schema": {"type": "string"}})
        new["components"]["schemas"]["Thing"] = {"type": "object"}
        new["info"]["description"] = "reworded"

    assert _changed(committed, add) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda new: new["paths"].pop("/v1/jobs/{job_id}/cancel"), "POST /v1/jobs/{job_id}/cancel: the operation"),
    (lambda new: new["paths"]["/v1/jobs"]["post"].update(operationId="submitJob"), "'createJob' became 'submitJob'"),
    (lambda new: _schema(new, "JobOut")["properties"].pop("queue_position"), "property 'queue_position' was removed"),
    (lambda new: _schema(new, "JobOut")["properties"]["attempt"].update(type="string"), "type ['integer'] became"),
    (lambda new: _schema(new, "FitSpec").setdefault("required", []).append("epochs"), "'epochs' became required"),
    (lambda new: _schema(new, "JobEvent")["properties"]["type"]["enum"].append("paused"), "may now send ['paused']"),
    (lambda new: _schema(new, "CompileSpec")["properties"]["steps_per_execution"].update(maximum=10),
     "maximum 100000"),
    (lambda new: new["components"]["schemas"].update(JobRecord=new["components"]["schemas"].pop("JobOut")),
     "JobOut: the schema was removed or renamed"),
    (lambda new: new["paths"]["/v1/jobs"]["get"]["parameters"].append(
        {"name": "project", "in": "query", "required": True, "schema": {"type": "string"}}),
     "a new required query parameter 'project'"),
])
def test_a_change_that_breaks_clients_is_found(committed: dict[str, Any], change: Any, expected: str) -> None:
    found = _changed(committed, change)
    assert any(expected in line for line in found), found


def test_a_breaking_change_passes_only_with_a_major_version_and_its_changelog(committed: dict[str, Any]) -> None:
    new = copy.deepcopy(committed)
    _schema(new, "JobOut")["properties"].pop("links")
    assert unannounced_breaks(committed, new, "")
    major = int(committed["info"]["version"].split(".")[0])
    new["info"]["version"] = f"{major + 1}.0.0"
    assert unannounced_breaks(committed, new, f"## {major}.0.0\n")
    assert unannounced_breaks(committed, new, f"## {major + 1}.0.0\nJobOut.links is gone.\n") == []
