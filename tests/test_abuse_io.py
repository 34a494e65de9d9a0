"""One client cannot stall the others through the request side: a bogus key is refused before its body is read,
a slow body is cut with a 408 and never holds a transaction, uploads are capped per tenant, failed
authentications are rate-limited per address, and /version names no server to a caller without an admin key.
Each test asserts the attacker's answer and the other tenant's (its requests answered, its job finished)."""

from __future__ import annotations

import io
import secrets
import time
import zipfile

import httpx
import numpy as np
import psycopg
import pytest

from tests.abuse import (
    SlowRequest,
    abuse_api_process,
    finished,
    multipart_head,
    submit_fit,
    tenant,
    with_model_and_data,
)
from tests.seed import npy_bytes, npz_bytes, seed_arrays, upload
from tests.services import PG_ADMIN_URL


@pytest.fixture(scope="module")
def abuse_api(keyed_env, keyed_worker, logs_dir):
    with abuse_api_process(keyed_env, logs_dir) as url:
        yield url


def bogus_key() -> str:
    """A key of the right shape (so SQL would be asked) that no tenant has."""
    return f"kd_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)[:43]}"


def slow_upload(api: str, key: str, filename: str, magic: bytes) -> SlowRequest:
    """A dataset upload declaring 10 MB: the file's magic and 40 KB at once (two storage chunks, each stored in a
    transaction of its own), then a byte a second: at 2,000 bytes a second after a 2 s grace
    (KERASD_MIN_BODY_BYTES_PER_S) it is cut with a 408 about 22 s in."""
    headers, start = multipart_head(filename)
    return SlowRequest(
        api,
        "POST",
        "/v1/datasets",
        {"Authorization": f"Bearer {key}", **headers},
        declared=10_000_000,
        prefix=start + magic + b"x" * 40_000,
        drip=1,
        every_s=1,
    )


def test_a_huge_body_with_a_bogus_key_is_refused_before_it_is_read(abuse_api):
    other = with_model_and_data(tenant(abuse_api, "calm"))
    job_id = submit_fit(other, epochs=3)
    # 16 MB of JSON declared, 64 KiB sent, the rest never: an API that read the body first would wait for it (and
    # answer 408 when it fell behind the minimum rate); one that checks the key first answers at once.
    attacks = [
        SlowRequest(
            abuse_api,
            "POST",
            "/v1/jobs",
            {"Authorization": f"Bearer {bogus_key()}", "Content-Type": "application/json"},
            declared=16_000_000,
            prefix=b'{"kind": "' + b"a" * 65536,
            drip=0,
            every_s=5,
        )
        for _ in range(4)
    ]
    for attack in attacks:
        attack.start()
    assert other.client.get(f"/v1/jobs/{job_id}").status_code == 200
    for attack in attacks:
        answer = attack.result()
        # 401, or 429 once this address has presented too many bad keys: refused either way, body unread.
        assert answer.status in (401, 429), answer
        assert answer.sent == 65536 + len(b'{"kind": "')
    assert finished(other, job_id)["status"] == "succeeded"


def idle_transactions(database: str) -> list[tuple]:
    """Connections to the session's database sitting in an open transaction for over a second."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, left(query, 80) FROM pg_stat_activity WHERE datname = %s AND "
            "state LIKE 'idle in transaction%%' AND xact_start < now() - interval '1 second'",
            (database,),
        ).fetchall()


def partial_blobs(database: str) -> int:
    """Uploads under way in the session's database: each stores its chunks under a partial blob of its own."""
    with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM blobs WHERE sha256 LIKE 'partial-%%'").fetchone()[0]


def test_a_slow_upload_is_cut_with_408_and_holds_no_transaction_while_it_lasts(abuse_api, keyed_env):
    other = with_model_and_data(tenant(abuse_api, "calm"))
    attacker = tenant(abuse_api, "slow")
    # A valid .npy header: an upload refused by its first bytes is answered at once, and this one must be stored.
    npy_header = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy_header, {"descr": "<f4", "fortran_order": False, "shape": (2_000_000,)})
    slow = slow_upload(abuse_api, attacker.key, "slow.npy", npy_header.getvalue())
    slow.start()
    database = keyed_env["KERASD_DATABASE_URL"].rsplit("/", 1)[1]
    held = []
    # Meanwhile the other tenant uploads, trains and reads, and no connection waits in an open transaction.
    job_id = submit_fit(other, epochs=2)
    assert upload(other.client, "more.npz", npz_bytes(**seed_arrays(1))).status_code == 201
    while slow.is_alive() and not held:
        held = idle_transactions(database)
        assert other.client.get(f"/v1/jobs/{job_id}").status_code == 200
        time.sleep(0.5)
    assert held == []
    answer = slow.result()
    assert answer.status == 408, answer
    assert b"KERASD_MIN_BODY_BYTES_PER_S" in answer.body
    assert answer.headers.get("connection") == "close"
    assert finished(other, job_id)["status"] == "succeeded"
    # Nothing of the refused upload was recorded, and the chunks it stored while it lasted are gone.
    assert attacker.client.get("/v1/datasets").json()["total"] == 0
    assert partial_blobs(database) == 0


def test_a_tenant_past_its_concurrent_uploads_gets_429_and_others_still_upload(abuse_api, keyed_env):
    other = tenant(abuse_api, "calm")
    attacker = tenant(abuse_api, "many")
    database = keyed_env["KERASD_DATABASE_URL"].rsplit("/", 1)[1]
    slow = [slow_upload(abuse_api, attacker.key, "slow.npz", b"PK") for _ in range(2)]
    # One at a time, each known to hold its slot before the next request: an upload stores its first chunk
    # (KERASD_CHUNK_BYTES=16384) only once it holds its slot. Started together with the third, any of the three
    # could reach the cap first, and a slow one refused ended the test's wait without a refusal of the third.
    before = partial_blobs(database)
    for opened, request in enumerate(slow, start=1):
        request.start()
        deadline = time.monotonic() + 15
        while partial_blobs(database) < before + opened:
            assert request.is_alive() and time.monotonic() < deadline, (
                f"slow upload {opened} never stored a chunk: {request.answer}, {request.error}"
            )
            time.sleep(0.1)
    # Both hold their slots until their 408s (KERASD_MAX_UPLOADS_PER_TENANT=2): the next is refused before its body.
    refused = upload(attacker.client, "small.npz", npz_bytes(**seed_arrays()))
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "KERASD_MAX_UPLOADS_PER_TENANT" in refused.json()["detail"]
    assert upload(other.client, "calm.npz", npz_bytes(**seed_arrays())).status_code == 201
    assert all(request.is_alive() for request in slow), [(r.answer, r.error) for r in slow]
    assert [request.result().status for request in slow] == [408, 408]
    # Their slots came back with their 408s.
    assert upload(attacker.client, "after.npz", npz_bytes(**seed_arrays())).status_code == 201


def bz2_npz() -> bytes:
    """An .npz whose one member is compressed with bz2 (np.savez never writes one): 1 MiB of zeros in ~100 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("x.npy", npy_bytes(np.zeros(1024**2 // 4, dtype="float32")))
    return buffer.getvalue()


def test_uploads_refused_by_their_first_bytes_are_answered_while_still_sent(abuse_api, keyed_env):
    other = tenant(abuse_api, "calm")
    bomber, amplifier = tenant(abuse_api, "bomber"), tenant(abuse_api, "amplifier")
    database = keyed_env["KERASD_DATABASE_URL"].rsplit("/", 1)[1]
    before = partial_blobs(database)
    headers, npz_start = multipart_head("bomb.npz")
    _headers, csv_start = multipart_head("tiny.csv")

    def field(name: str, value: str) -> bytes:
        return f'--kerasd-abuse\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()

    csv = b"a,b\n" + b"1,2\n" * 20_000
    # Each sends 40 KB at once (more than one 16 KiB storage chunk), then a byte a second: an upload read to its end
    # before it is checked is cut with a 408 ~22 s in, having stored its chunks meanwhile; one refused by its first
    # bytes is answered 422 while its client still sends, nothing of it stored or spooled.
    attacks = {
        # A zip member's local header names bz2: the zip directory at the end would say so too, after the whole body.
        "bomb": (bomber, npz_start + bz2_npz() + b"\0" * 40_000),
        # The form names one column 20,000 times (past the column limit) before the file: refused as the file begins.
        "repeated": (amplifier, field("x_columns", ",".join(["a"] * 20_000)) + csv_start + csv[:40_000]),
        # A column the header (in the first chunk) does not have.
        "unknown": (amplifier, field("x_columns", "nope") + csv_start + csv[:40_000]),
    }
    slow = {
        name: SlowRequest(
            abuse_api,
            "POST",
            "/v1/datasets",
            {"Authorization": f"Bearer {who.key}", **headers},
            declared=10_000_000,
            prefix=prefix,
            drip=1,
            every_s=1,
        )
        for name, (who, prefix) in attacks.items()
    }
    for request in slow.values():
        request.start()
    assert upload(other.client, "calm.npz", npz_bytes(**seed_arrays())).status_code == 201
    answers = {name: request.result() for name, request in slow.items()}
    for name, needle in (("bomb", b"bz2"), ("repeated", b"20,000 columns (1 distinct)"), ("unknown", b"'nope'")):
        answer = answers[name]
        assert answer.status == 422, (name, answer)
        assert needle in answer.body and b"Nothing was stored" in answer.body, (name, answer.body)
        assert answer.sent < 100_000, (name, answer.sent)
    assert partial_blobs(database) == before
    assert other.client.get("/v1/datasets").json()["total"] == 1


def test_version_names_workers_hosts_and_pids_only_to_admins(abuse_api, keyed_worker):
    user = tenant(abuse_api, "user")
    admin = tenant(abuse_api, "admin", role="admin")
    with httpx.Client(base_url=abuse_api, timeout=60) as anonymous:
        anonymous_view = anonymous.get("/version")
    assert anonymous_view.status_code == 200
    for view in (anonymous_view, user.client.get("/version")):
        assert view.status_code == 200
        workers = view.json()["workers"]
        assert workers and all("pid" not in w and "name" not in w for w in workers), workers
        assert all("queues" in w for w in workers)
    workers = admin.client.get("/version").json()["workers"]
    assert workers and all(w["pid"] and w["name"] for w in workers), workers


def test_failed_authentications_from_one_address_are_429_after_a_burst(abuse_api):
    """Last in this module: it leaves 127.0.0.1 refused for keys this API process has not seen yet."""
    other = tenant(abuse_api, "calm")
    # Its key is accepted once before the flood, from the same address as the flood.
    assert other.client.get("/v1/jobs").status_code == 200
    statuses, retry_after = [], None
    with httpx.Client(base_url=abuse_api, timeout=60) as anonymous:
        for _ in range(12):
            answer = anonymous.get("/v1/jobs", headers={"Authorization": f"Bearer {bogus_key()}"})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                retry_after = answer.headers["Retry-After"]
                assert "not valid" in answer.json()["detail"]
    # KERASD_AUTH_FAILURE_BURST=5: at most five 401s, then 429s, with no SQL asked for those.
    assert set(statuses) <= {401, 429} and statuses.count(401) <= 5, statuses
    assert statuses[-1] == 429 and int(retry_after) >= 1, statuses
    assert statuses == sorted(statuses), statuses  # once refused, refused until the bucket refills
    # Looked up again (no key cache here), and not refused with the address's bad keys.
    assert other.client.get("/v1/jobs").status_code == 200
