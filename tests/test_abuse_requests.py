"""One client cannot stall or break the others through what it sends: YAML bodies are read out of the API process
(large ones refused, alias bombs refused), live event streams are capped per tenant and per process before their
200, and input that used to be a 500 (CSV that is not UTF-8 or has a field over 128 KiB, a lone surrogate, a file
name outside Latin-1 or with a quote in it) is a 422 or served as it should be. Each test asserts the attacker's
answer and the other tenant's."""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from urllib.parse import unquote

import httpx
import numpy as np
import pytest

from tests.abuse import abuse_api_process, finished, submit_fit, tenant, with_model_and_data
from tests.seed import npy_bytes, upload


@pytest.fixture(scope="module")
def abuse_api(keyed_env, keyed_worker, logs_dir):
    with abuse_api_process(keyed_env, logs_dir) as url:
        yield url


def big_yaml(index: int) -> bytes:
    """About 1 MB of valid YAML that is not a model: the whole document must be read to find that out."""
    lines = [f"k{index}_{n}: [{n}, {n + 1}, {n + 2}, 'some text to read {n}']" for n in range(18_000)]
    return ("\n".join(lines) + "\n").encode()


def test_yaml_bodies_are_answered_and_another_tenant_is_answered_meanwhile(abuse_api):
    other = tenant(abuse_api, "calm")
    attacker = tenant(abuse_api, "yaml")
    answers: list[httpx.Response] = []

    def send(index: int) -> None:
        answers.append(attacker.client.post("/v1/models", content=big_yaml(index),
                                            headers={"Content-Type": "application/yaml"}))

    threads = [threading.Thread(target=send, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    reads = [other.client.get("/v1/models").status_code for _ in range(5)]
    for thread in threads:
        thread.join(300)
    assert reads == [200] * 5
    assert [answer.status_code for answer in answers] == [422] * 4, [a.text for a in answers]
    assert all("not a model" in answer.json()["detail"] or "class_name" in answer.json()["detail"]
               for answer in answers)
    # A few hundred bytes of aliases standing for billions of nodes, and a document over KERASD_MAX_YAML_BYTES.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, "
        f"*{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}]\n" for n in range(8))
    refused = attacker.client.post("/v1/models", content=bomb, headers={"Content-Type": "application/yaml"})
    assert refused.status_code == 422 and "aliases" in refused.json()["detail"], refused.text
    too_big = attacker.client.post("/v1/models", content=b"a: b\n" * 300_000,
                                   headers={"Content-Type": "application/yaml"})
    assert too_big.status_code == 413 and "KERASD_MAX_YAML_BYTES" in too_big.json()["detail"], too_big.text
    assert other.client.get("/v1/models").status_code == 200


def open_stream(stack: ExitStack, who, job_id: str) -> httpx.Response:
    response = stack.enter_context(who.client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120))
    if response.status_code != 200:
        response.read()
    return response


def test_event_streams_past_a_tenants_cap_or_the_process_cap_are_refused_before_their_200(abuse_api):
    attacker = with_model_and_data(tenant(abuse_api, "streams"))
    third = with_model_and_data(tenant(abuse_api, "third"))
    other = with_model_and_data(tenant(abuse_api, "calm"))
    # A long job, so that its stream stays open; the third tenant's waits behind it.
    long_job = submit_fit(attacker, epochs=100_000)
    third_job = submit_fit(third, epochs=1)
    try:
        with ExitStack() as stack:
            # KERASD_MAX_STREAMS_PER_TENANT=3: three streams, then a 429 before any 200.
            opened = [open_stream(stack, attacker, long_job) for _ in range(3)]
            assert [response.status_code for response in opened] == [200] * 3
            with attacker.client.stream("GET", f"/v1/jobs/{long_job}/events") as fourth:
                fourth.read()
                assert fourth.status_code == 429, fourth.text
                assert int(fourth.headers["Retry-After"]) >= 1
                assert "KERASD_MAX_STREAMS_PER_TENANT" in fourth.json()["detail"]
            # The cap answers before any SQL is asked (a flood of refused streams retrying cost two look-ups each):
            # even a job that does not exist.
            assert attacker.client.get(f"/v1/jobs/{'0' * 32}/events").status_code == 429
            # KERASD_MAX_STREAMS_PER_PROCESS=5: another tenant's two fit, its third is a 503 before any 200.
            assert [open_stream(stack, third, third_job).status_code for _ in range(2)] == [200, 200]
            with third.client.stream("GET", f"/v1/jobs/{third_job}/events") as refused:
                refused.read()
                assert refused.status_code == 503, refused.text
                assert int(refused.headers["Retry-After"]) >= 1
            # The streams already answered 200 still deliver: each gets the stream's opening hint.
            for response in opened:
                assert next(response.iter_lines()).startswith("retry:")
            assert other.client.get(f"/v1/jobs/{long_job}").status_code == 404  # not its job, and answered
            assert other.client.get("/v1/jobs").status_code == 200
        # Every stream closed gave its slot back.
        with ExitStack() as stack:
            assert [open_stream(stack, attacker, long_job).status_code for _ in range(3)] == [200] * 3
    finally:
        attacker.client.post(f"/v1/jobs/{long_job}/cancel")
    assert finished(third, third_job)["status"] == "succeeded"


def test_input_that_was_a_500_is_a_422_or_served_and_another_tenant_is_answered(abuse_api):
    other = tenant(abuse_api, "calm")
    attacker = tenant(abuse_api, "odd")
    not_utf8 = upload(attacker.client, "latin1.csv", "a,b\n1,2\n3,\xe9\n".encode("latin-1"))
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.json()["detail"], not_utf8.text
    huge_field = upload(attacker.client, "huge.csv", b"a,b\n1," + b"9" * 140_000 + b"\n")
    assert huge_field.status_code == 422 and "field larger" in huge_field.json()["detail"], huge_field.text
    surrogate = attacker.client.post("/v1/jobs", content=b'{"kind": "fit", "name": "\\ud800"}',
                                     headers={"Content-Type": "application/json"})
    assert surrogate.status_code == 422 and "surrogate" in surrogate.json()["detail"], surrogate.text
    assert attacker.client.get("/v1/datasets").json()["total"] == 0
    for name in ('données "x" 数据.npy', "naïve\\name.npy"):
        stored = attacker.client.post("/v1/datasets", data={"name": name}, files={
            "file": ("a.npy", npy_bytes(np.ones(1, dtype="float32")), "application/octet-stream")})
        assert stored.status_code == 201, stored.text
        content = attacker.client.get(f"/v1/datasets/{stored.json()['id']}/content")
        assert content.status_code == 200
        disposition = content.headers["content-disposition"]
        fallback, _, encoded = disposition.partition("; filename*=UTF-8''")
        assert unquote(encoded) == name
        assert fallback.count('"') == 2 and fallback.isascii(), disposition
    assert json.loads(other.client.get("/v1/datasets").text)["total"] == 0
