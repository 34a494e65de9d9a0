"""What the abuse tests share: an API with small caps and short body deadlines, and a client that sends its body
as slowly as it likes over a raw socket (httpx sends a body as fast as it can)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.seed import SEED_MODEL, fit_request, npz_bytes, seed_arrays, upload
from tests.services import running_api
from tests.tenancy import keyed_client, make_tenant

# Small enough to reach in a test, each one of the settings a deployment tunes.
ABUSE_SETTINGS = {
    "KERASD_MIN_BODY_BYTES_PER_S": "2000",
    "KERASD_BODY_GRACE_S": "2",
    "KERASD_BODY_IDLE_TIMEOUT_S": "4",
    "KERASD_MAX_UPLOADS_PER_TENANT": "2",
    # Storage chunks of 16 KiB: a slow upload's first 40 KB make two, stored while it still sends.
    "KERASD_CHUNK_BYTES": "16384",
    "KERASD_MAX_STREAMS_PER_TENANT": "3",
    "KERASD_MAX_STREAMS_PER_PROCESS": "5",
    "KERASD_AUTH_FAILURE_BURST": "5",
    "KERASD_AUTH_FAILURES_PER_S_PER_ADDRESS": "0.05",
    # No key cache: every request's key is looked up, so a key accepted before a flood of bad ones from the same
    # address must still be looked up (and accepted) during it.
    "KERASD_API_KEY_CACHE_S": "0",
}


@contextmanager
def abuse_api_process(keyed_env: dict[str, str], logs_dir: Path) -> Iterator[str]:
    """URL of an API process of its own (keys required, the session's keyed worker) with ABUSE_SETTINGS."""
    with running_api({**keyed_env, **ABUSE_SETTINGS}, logs_dir / f"abuse-api-{uuid.uuid4().hex[:6]}.log") as (url, _):
        yield url


@dataclass
class Tenant:
    id: str
    key: str
    client: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)


def tenant(url: str, prefix: str, **quotas) -> Tenant:
    tenant_id, key = make_tenant(prefix, **quotas)
    return Tenant(tenant_id, key, keyed_client(url, key))


def with_model_and_data(who: Tenant) -> Tenant:
    """The seed's model and arrays, uploaded by this tenant."""
    dataset = upload(who.client, "seed.npz", npz_bytes(**seed_arrays()))
    assert dataset.status_code == 201, dataset.text
    model = who.client.post("/v1/models", json=SEED_MODEL)
    assert model.status_code == 201, model.text
    who.ids.update(dataset=dataset.json()["id"], model=model.json()["id"])
    return who


def submit_fit(who: Tenant, **fit) -> str:
    created = who.client.post("/v1/jobs", json=fit_request(who.ids["model"], who.ids["dataset"], **fit))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def finished(who: Tenant, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = who.client.get(f"/v1/jobs/{job_id}")
        assert job.status_code == 200, job.text
        if job.json()["status"] in ("succeeded", "failed", "cancelled"):
            return job.json()
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end in {timeout_s} s")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client had sent when the answer came


class SlowRequest(threading.Thread):
    """One request whose head goes out at once and whose body goes out `drip` bytes every `every_s` seconds after
    `prefix`, until the server answers or `declared` bytes are sent; `answer` holds what came back."""

    def __init__(self, url: str, method: str, path: str, headers: dict[str, str], *, declared: int,
                 prefix: bytes = b"", drip: int = 1, every_s: float = 1.0, give_up_s: float = 120) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {declared}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        self.head = ("\r\n".join(head) + "\r\n\r\n").encode()
        self.declared, self.prefix, self.drip, self.every_s, self.give_up_s = declared, prefix, drip, every_s, give_up_s
        self.answer: Answer | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.answer = self._exchange()
        except BaseException as exc:  # kept for the test to raise
            self.error = exc

    def _exchange(self) -> Answer:
        with socket.create_connection(self.address, timeout=self.give_up_s) as sock:
            sock.sendall(self.head + self.prefix)
            sent = len(self.prefix)
            deadline = time.monotonic() + self.give_up_s
            received = b""
            while time.monotonic() < deadline:
                sock.settimeout(self.every_s)
                try:
                    data = sock.recv(65536)
                    if not data:
                        break
                    received += data
                    if _complete(received):
                        break
                    continue
                except TimeoutError:
                    pass
                if sent < self.declared:
                    try:
                        sock.sendall(b"x" * min(self.drip, self.declared - sent))
                        sent += min(self.drip, self.declared - sent)
                    except OSError:
                        pass  # the server closed its side: read what it answered
            return _parse(received, sent)

    def result(self, timeout_s: float = 180) -> Answer:
        self.join(timeout_s)
        if self.error is not None:
            raise self.error
        assert self.answer is not None, "no answer came"
        return self.answer


def _complete(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _parse(data: bytes, sent: int) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), f"not an HTTP answer: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body, sent)


def multipart_head(filename: str, boundary: str = "kerasd-abuse") -> tuple[dict[str, str], bytes]:
    """Headers and the start of a multipart body whose `file` part then takes whatever bytes follow."""
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    start = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    return headers, start
