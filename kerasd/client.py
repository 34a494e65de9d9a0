"""`kerasd.Client` (blocking) and `kerasd.AsyncClient` (asyncio), both over httpx.

    client = kerasd.Client("http://127.0.0.1:8000", api_key=...)
    dataset = client.datasets.upload({"x": x, "y": y})
    job = client.jobs.create(kind="fit", model_id=..., compile={...}, fit={...})
    for event in client.jobs.events(job["id"]):
        print(event.type, event.data)

    async with kerasd.AsyncClient() as client:
        job = await client.jobs.wait(job_id)
        async for event in client.jobs.events(job_id): ...

Event streams are read with httpx-sse and resumed with tenacity; what both clients do alike is in kerasd/_base.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import tenacity
from httpx_sse import aconnect_sse, connect_sse

from kerasd._base import (
    DEFAULT_TIMEOUT,
    STREAM_BREAKS,
    BaseClient,
    Call,
    Operation,
    Sleep,
    StreamEnded,
)
from kerasd.errors import APIError
from kerasd.events import Event, EventStream, carries_events
from kerasd.jobs import Jobs
from kerasd.progress import TransferBar
from kerasd.registry import Registry
from kerasd.resources import TERMINAL_STATUSES, Datasets, Models, Plugins, System, Weights
from kerasd.sweeps import Sweeps, sweep_events_path

# An event stream is idle between events; the server sends heartbeats, so silence this long means a dead link.
SSE_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT, read=90.0)


class _Resources:
    def _make_resources(self) -> None:
        self.models = Models(self)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.sweeps = Sweeps(self)
        self.weights = Weights(self)
        self.plugins = Plugins(self)
        self.registry = Registry(self)
        self._system = System(self)

    def version(self) -> Any:
        """`GET /version`: kerasd, TensorFlow and Keras versions, backend, workers (tutorial §1)."""
        return self._system.version()

    def health(self) -> Any:
        return self._system.health()


class Client(BaseClient, _Resources):
    """A blocking client. Resources: `models`, `datasets`, `jobs`, `weights`, `plugins`, `registry`; and
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
        from kerasd.remote import RemoteModel

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
        try:
            response = self._send_once(call)
            if self._refused(call, response):
                # tenacity takes over from the answer already received: it waits, then sends again.
                first = [response]
                response = tenacity.Retrying(**self._retrying())(lambda: first.pop() if first else
                                                                 self._send_once(call))
        except httpx.TransportError as exc:
            raise self._connection_error(call.method, f"{self.base_url}{call.path}", exc) from exc
        return self._answer(call, response)

    def _send_once(self, call: Call) -> httpx.Response:
        if call.download is not None:
            return self._download(call)
        return self._http.request(call.method, call.path, **self._request_kwargs(call))

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

    def _events(self, job_id: str, *, last_event_id: str | None, reconnect: bool, max_reconnects: int,
                notify: Callable[[str], None] | None = None) -> Iterator[Event]:
        stream = EventStream(job_id, last_event_id)
        try:
            for attempt in tenacity.Retrying(**self._reconnecting(stream, reconnect=reconnect,
                                                                  max_reconnects=max_reconnects, notify=notify)):
                with attempt, connect_sse(self._http, "GET", stream.path, headers=stream.headers(),
                                          timeout=SSE_TIMEOUT) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        raise self._api_error(source.response)
                    for sse in source.iter_sse() if carries_events(source.response) else ():
                        event = stream.accept(sse, attempt.retry_state.attempt_number)
                        if event is None:
                            continue
                        yield event
                        # A retried job's stream goes on past its earlier end.
                        if event.terminal and self.jobs.get(job_id)["status"] in TERMINAL_STATUSES:
                            return
                    # Closed without the job's end: a capped connection, or a job whose stream is gone.
                    if not reconnect or self.jobs.get(job_id)["status"] in TERMINAL_STATUSES:
                        return
                    raise StreamEnded
        except STREAM_BREAKS as exc:
            raise self._stream_broken(stream, exc) from exc


    def _sweep_events(self, sweep_id: str) -> Iterator[dict[str, Any]]:
        """A sweep's events until its last, `sweep`; a connection closed before it (the server's lifetime cap) is
        opened again with the last event's id (`Last-Event-ID`), and goes on after it."""
        last: dict[str, str] = {}
        while True:
            with connect_sse(self._http, "GET", sweep_events_path(sweep_id), headers=last,
                             timeout=SSE_TIMEOUT) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise self._api_error(source.response)
                if source.response.status_code == 204:
                    return
                for sse in source.iter_sse():
                    if sse.id:
                        last = {"Last-Event-ID": sse.id}
                    if sse.data:
                        event = json.loads(sse.data)
                        yield event
                        if event["type"] == "sweep":
                            return


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
        try:
            response = await self._send_once(call)
            if self._refused(call, response):
                first = [response]

                async def again() -> httpx.Response:
                    return first.pop() if first else await self._send_once(call)

                response = await tenacity.AsyncRetrying(**self._retrying())(again)
        except httpx.TransportError as exc:
            raise self._connection_error(call.method, f"{self.base_url}{call.path}", exc) from exc
        return self._answer(call, response)

    async def _send_once(self, call: Call) -> httpx.Response:
        if call.download is not None:
            return await self._download(call)
        return await self._http.request(call.method, call.path, **self._request_kwargs(call))

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

    async def _events(self, job_id: str, *, last_event_id: str | None, reconnect: bool, max_reconnects: int,
                      notify: Callable[[str], None] | None = None) -> AsyncIterator[Event]:
        stream = EventStream(job_id, last_event_id)
        try:
            async for attempt in tenacity.AsyncRetrying(**self._reconnecting(
                    stream, reconnect=reconnect, max_reconnects=max_reconnects, notify=notify)):
                with attempt:
                    async with aconnect_sse(self._http, "GET", stream.path, headers=stream.headers(),
                                            timeout=SSE_TIMEOUT) as source:
                        if source.response.status_code >= 400:
                            await source.response.aread()
                            raise self._api_error(source.response)
                        events = source.aiter_sse() if carries_events(source.response) else _nothing()
                        async for sse in events:
                            event = stream.accept(sse, attempt.retry_state.attempt_number)
                            if event is None:
                                continue
                            yield event
                            if event.terminal and (await self.jobs.get(job_id))["status"] in TERMINAL_STATUSES:
                                return
                    if not reconnect or (await self.jobs.get(job_id))["status"] in TERMINAL_STATUSES:
                        return
                    raise StreamEnded
        except STREAM_BREAKS as exc:
            raise self._stream_broken(stream, exc) from exc


    async def _sweep_events(self, sweep_id: str) -> AsyncIterator[dict[str, Any]]:
        """As `Client`'s, as an async iterator."""
        last: dict[str, str] = {}
        while True:
            async with aconnect_sse(self._http, "GET", sweep_events_path(sweep_id), headers=last,
                                    timeout=SSE_TIMEOUT) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    raise self._api_error(source.response)
                if source.response.status_code == 204:
                    return
                async for sse in source.aiter_sse():
                    if sse.id:
                        last = {"Last-Event-ID": sse.id}
                    if sse.data:
                        event = json.loads(sse.data)
                        yield event
                        if event["type"] == "sweep":
                            return


async def _nothing() -> AsyncIterator[Any]:
    return
    yield
