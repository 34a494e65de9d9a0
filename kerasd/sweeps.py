"""`client.sweeps`: hyperparameter searches whose trials are jobs (`POST/GET /v1/sweeps`). The same class serves
`Client` (methods return values) and `AsyncClient` (methods return awaitables)."""

from __future__ import annotations

import time
from typing import Any

from kerasd._base import Call, Operation, Sleep
from kerasd.resources import Resource, _get_json, _get_page


def sweep_events_path(sweep_id: str) -> str:
    return f"/v1/sweeps/{sweep_id}/events"


class Sweeps(Resource):
    """`POST/GET /v1/sweeps`: a base job, a space of paths into it, an objective, an algorithm, a budget."""

    def create(self, request: dict[str, Any] | None = None, **fields: Any) -> Any:
        """Start a sweep: the body of `POST /v1/sweeps` (job, space, objective, algorithm, budget,
        early_stopping, seed, name), as a dict or as keyword arguments. Returns the sweep."""
        return self._run(self._post("/v1/sweeps", {**(request or {}), **fields}))

    def get(self, sweep_id: str) -> Any:
        """The sweep: status, its trials (values, job, status, objective) and `best`."""
        return self._run(_get_json(f"/v1/sweeps/{sweep_id}"))

    def list(self, *, limit: int = 50, cursor: str | None = None, offset: int = 0) -> Any:
        """A page of sweeps, newest first; `page.next_cursor` goes on (None on the last). Sweeps page by cursor
        only: `offset` is there for callers that start every listing at 0."""
        if offset:
            raise ValueError("sweeps page by cursor: pass the page's next_cursor as cursor, not an offset")
        return self._run(self._list(limit, cursor))

    def _list(self, limit: int, cursor: str | None) -> Operation:
        page = yield from _get_page("/v1/sweeps", {"limit": limit, "cursor": cursor})
        return page

    def cancel(self, sweep_id: str) -> Any:
        """No new trials; its queued trials are cancelled and its running ones stop at their next batch."""
        return self._run(self._post(f"/v1/sweeps/{sweep_id}/cancel", None))

    def events(self, sweep_id: str) -> Any:
        """The sweep's events as dicts (`type` `trial`: `data` is a trial as `get` shows it; the last, `sweep`:
        `status`, `counts`, `best`): first every trial as it stands, then each change, until the sweep has ended.
        An iterator (an async iterator on `AsyncClient`)."""
        return self._client._sweep_events(sweep_id)

    def best(self, sweep_id: str) -> Any:
        """The trial with the best objective so far (None before any trial succeeded)."""
        return self._run(self._best(sweep_id))

    def _best(self, sweep_id: str) -> Operation:
        sweep = yield from _get_json(f"/v1/sweeps/{sweep_id}")
        return sweep.get("best")

    def wait(self, sweep_id: str, *, timeout: float | None = None, poll_interval: float = 1.0) -> Any:
        """Block until the sweep has ended (completed or cancelled) and every trial's end is counted; returns it.
        `TimeoutError` after `timeout` seconds."""
        return self._run(self._wait(sweep_id, timeout, poll_interval))

    def _wait(self, sweep_id: str, timeout: float | None, poll_interval: float) -> Operation:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sweep = yield from _get_json(f"/v1/sweeps/{sweep_id}")
            if sweep["status"] != "running" and all(t["objective"] is not None or t.get("note")
                                                    for t in sweep["trials"]):
                return sweep
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {sweep_id} is still {sweep['status']} after {timeout} s")
            yield Sleep(poll_interval)

    def ask(self, sweep_id: str, space: dict[str, Any]) -> Any:
        """A trial of a `space_from: "client"` sweep: `{"number", "params"}`, the values chosen in `space` (your
        hyperparameters by name, each a dimension as a sweep's space takes it). `Conflict` when its budget is spent."""
        return self._run(self._post(f"/v1/sweeps/{sweep_id}/trials", {"space": space}))

    def submit_trial(self, sweep_id: str, number: int, job: dict[str, Any]) -> Any:
        """The fit job of an asked trial (the body of `POST /v1/jobs`); returns the job."""
        return self._run(self._post(f"/v1/sweeps/{sweep_id}/trials/{int(number)}/job", job))

    def fail_trial(self, sweep_id: str, number: int, reason: str) -> Any:
        """An asked trial that will have no job (its model could not be built, or its job was refused): the sweep
        counts it failed, with `reason`, and its search learns the values failed. Returns the sweep."""
        return self._run(self._post(f"/v1/sweeps/{sweep_id}/trials/{int(number)}/fail", {"reason": reason}))

    def _post(self, path: str, body: dict[str, Any] | None) -> Operation:
        response = yield Call("POST", path, json=body)
        return response.json()
