"""`kerasd.Client` (blocking) and `kerasd.AsyncClient` (asyncio), both over httpx.

    client = kerasd.Client("http://127.0.0.1:8000", api_key=...)
    dataset = client.datasets.upload({"x": x, "y": y})
    job = client.jobs.create(kind="fit", model_id=..., compile={...}, fit={...})
    for event in client.jobs.events(job["id"]):
        print(event.type, event.data)

    async with kerasd.AsyncClient() as client:
        job = await client.jobs.wait(job_id)
        async for event in client.jobs.events(job_id): ...
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from kerasd._base import DEFAULT_TIMEOUT, BaseClient, Call, Operation, Sleep, api_error
from kerasd.errors import APIConnectionError, APIError
from kerasd.events import Deduplicator, Event, SSEParser, id_key
from kerasd.progress import TransferBar
from kerasd.resources import TERMINAL_STATUSES, Datasets, Jobs, Models, Plugins, System, Weights

# An event stream is idle between events; the server sends heartbeats, so silence this long means a dead link.
SSE_READ_TIMEOUT_S = 90.0


def _reconnect_delay(parser: SSEParser, failures: int) -> float:
    base = (parser.retry_ms / 1000) if parser.retry_ms is not None else 1.0
    return min(base * (2 ** max(0, failures - 1)), 10.0) if failures else min(base, 2.0)


class _Resources:
    def _make_resources(self) -> None:
        self.models = Models(self)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.weights = Weights(self)
        self.plugins = Plugins(self)
        self._system = System(self)

    def version(self) -> Any:
        """`GET /version`: kerasd, TensorFlow and Keras versions, backend, workers (tutorial §1)."""
        return self._system.version()

    def health(self) -> Any:
        return self._system.health()


class Client(BaseClient, _Resources):
    """A blocking client. Resources: `models`, `datasets`, `jobs`, `weights`, `plugins`; and
    `remote(keras_model)`, a Keras model that trains on the server."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, max_retries: int = 2, verbose: int = 1,
                 headers: dict[str, str] | None = None, http_client: httpx.Client | None = None) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries, verbose=verbose,
                         headers=headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(base_url=self.base_url, timeout=timeout, headers=self._headers)
        if not self._owns_http:
            self._http.headers.update(self._headers)
        self._make_resources()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def remote(self, model: Any, **options: Any) -> Any:
        """A Keras model that compiles, fits, evaluates and predicts on the server (needs Keras locally)."""
        from kerasd.keras_bridge import RemoteModel

        return RemoteModel(self, model, **options)

    # --- driving operations ------------------------------------------------------------------------

    def _run(self, operation: Operation) -> Any:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                step = operation.throw(error) if error is not None else operation.send(value)
                error, value = None, None
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    continue
                try:
                    value = self._send(step)
                except APIError as exc:
                    error = exc
        except StopIteration as stop:
            return stop.value

    def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                if call.download is not None:
                    response = self._download(call)
                else:
                    response = self._http.request(call.method, call.path, **self._request_kwargs(call))
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{call.method} {self.base_url}{call.path}: {exc!r}") from exc
            if response.status_code < 400 or response.status_code in call.allow:
                return response
            delay = self._retry_delay(call, response, attempt)
            if delay is None:
                raise api_error(response)
            attempt += 1
            time.sleep(delay)

    def _download(self, call: Call) -> httpx.Response:
        download = call.download
        with self._http.stream(call.method, call.path, **self._request_kwargs(call)) as response:
            if response.status_code >= 400:
                response.read()
                return response
            size = response.headers.get("content-length")
            bar = TransferBar(int(size) if size and size.isdigit() else None, download.label,
                              verbose=download.verbose)
            download.target.seek(0)
            download.target.truncate()
            for chunk in response.iter_bytes(1 << 20):
                download.target.write(chunk)
                bar.advance(len(chunk))
            bar.close()
        return response

    # --- events --------------------------------------------------------------------------------------

    def _events(self, job_id: str, *, last_event_id: str | None, reconnect: bool,
                max_reconnects: int) -> Iterator[Event]:
        dedupe = Deduplicator()
        if id_key(last_event_id) is not None:
            dedupe.fresh(Event(type="resume", id=last_event_id))
        last = last_event_id
        failures = 0
        parser = SSEParser()
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last:
                headers["Last-Event-ID"] = last
            parser = SSEParser()
            try:
                with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                       timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=SSE_READ_TIMEOUT_S)) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise api_error(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None or not dedupe.fresh(event):
                            continue
                        last = event.id or last
                        failures = 0
                        yield event
                        # A retried job's stream goes on past its earlier end.
                        if event.terminal and self.jobs.get(job_id).get("status") in TERMINAL_STATUSES:
                            return
            except httpx.TransportError as exc:
                if not reconnect or failures >= max_reconnects:
                    raise APIConnectionError(f"the event stream of job {job_id} broke: {exc!r}") from exc
                failures += 1
            else:
                # The server ended the stream without a terminal event: a capped connection, or a job
                # whose stream is gone. Ask the job itself before reconnecting.
                if not reconnect or self.jobs.get(job_id).get("status") in TERMINAL_STATUSES:
                    return
            time.sleep(_reconnect_delay(parser, failures))


class AsyncClient(BaseClient, _Resources):
    """The asyncio client: the same resources as `Client`, whose methods are awaited; `jobs.events(id)`
    is an async iterator."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, max_retries: int = 2, verbose: int = 1,
                 headers: dict[str, str] | None = None, http_client: httpx.AsyncClient | None = None) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries, verbose=verbose,
                         headers=headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                                      headers=self._headers)
        if not self._owns_http:
            self._http.headers.update(self._headers)
        self._make_resources()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _run(self, operation: Operation) -> Any:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                step = operation.throw(error) if error is not None else operation.send(value)
                error, value = None, None
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    continue
                try:
                    value = await self._send(step)
                except APIError as exc:
                    error = exc
        except StopIteration as stop:
            return stop.value

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                if call.download is not None:
                    response = await self._download(call)
                else:
                    response = await self._http.request(call.method, call.path, **self._request_kwargs(call))
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{call.method} {self.base_url}{call.path}: {exc!r}") from exc
            if response.status_code < 400 or response.status_code in call.allow:
                return response
            delay = self._retry_delay(call, response, attempt)
            if delay is None:
                raise api_error(response)
            attempt += 1
            await asyncio.sleep(delay)

    async def _download(self, call: Call) -> httpx.Response:
        download = call.download
        async with self._http.stream(call.method, call.path, **self._request_kwargs(call)) as response:
            if response.status_code >= 400:
                await response.aread()
                return response
            size = response.headers.get("content-length")
            bar = TransferBar(int(size) if size and size.isdigit() else None, download.label,
                              verbose=download.verbose)
            download.target.seek(0)
            download.target.truncate()
            async for chunk in response.aiter_bytes(1 << 20):
                download.target.write(chunk)
                bar.advance(len(chunk))
            bar.close()
        return response

    async def _events(self, job_id: str, *, last_event_id: str | None, reconnect: bool,
                      max_reconnects: int) -> AsyncIterator[Event]:
        dedupe = Deduplicator()
        if id_key(last_event_id) is not None:
            dedupe.fresh(Event(type="resume", id=last_event_id))
        last = last_event_id
        failures = 0
        parser = SSEParser()
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last:
                headers["Last-Event-ID"] = last
            parser = SSEParser()
            try:
                async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                             timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=SSE_READ_TIMEOUT_S)
                                             ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise api_error(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None or not dedupe.fresh(event):
                            continue
                        last = event.id or last
                        failures = 0
                        yield event
                        if event.terminal and (await self.jobs.get(job_id)).get("status") in TERMINAL_STATUSES:
                            return
            except httpx.TransportError as exc:
                if not reconnect or failures >= max_reconnects:
                    raise APIConnectionError(f"the event stream of job {job_id} broke: {exc!r}") from exc
                failures += 1
            else:
                job = await self.jobs.get(job_id)
                if not reconnect or job.get("status") in TERMINAL_STATUSES:
                    return
            await asyncio.sleep(_reconnect_delay(parser, failures))
