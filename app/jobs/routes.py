"""Jobs: submit, status with history, artifacts, and the live event stream (Server-Sent Events)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator
from redis import RedisError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core import events
from app.core.blobs import stream_blob
from app.core.database import get_session, get_sessionmaker
from app.core.errors import Problem, not_found
from app.core.read_pool import read_pool
from app.core.settings import Settings
from app.core.statuses import STATUS_PATTERN
from app.core.workers_registry import WORKERS_KEY, alive, live_workers
from app.experiments.schemas import CONTROL
from app.http.auth import Caller, current_caller
from app.http.deps import (
    decode_cursor,
    decode_sorted_cursor,
    encode_cursor,
    encode_sorted_cursor,
    settings,
    spec_checker,
)
from app.http.downloads import content_disposition
from app.http.openapi import file_response
from app.http.paths import JOB
from app.http.query_model import add_get_route
from app.http.reads import answer
from app.http.sessions import SessionReleasingRoute
from app.jobs import dispatch, feasibility, listing, repository, service
from app.jobs.schemas import ArtifactOut, JobCreate, JobOut, JobPage
from app.specchecker.pool import SpecChecker

log = logging.getLogger("kerasd.api")
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=SessionReleasingRoute)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut,
             summary="Submit a fit, evaluate or predict job (tutorial §3.1-§3.4, §4.4)",
             description="Compile, fit, evaluate and predict arguments and callbacks under Keras's own "
                         "names; arrays by dataset id and array name, or a tf.data-style pipeline of them. "
                         "Everything is checked before the job is queued: unknown datasets or arrays, row "
                         "counts that differ, names Keras does not know and arguments Keras removed are a "
                         "422, and nothing is stored.")
async def create_job(body: JobCreate, request: Request, checker: SpecChecker = Depends(spec_checker),
                     config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> Response:
    # Async, with all of its blocking work (SQL, the spec checker, Redis) in one worker thread: a sync route
    # with a session dependency took three thread hops. Not on run_sql's few threads: a submission may wait
    # seconds for the spec checker, and reads must not wait behind it.
    body_json = await run_in_threadpool(_create_job, body, request, checker, config, caller.tenant_id)
    return Response(body_json, status_code=status.HTTP_201_CREATED, media_type="application/json")


def _live_workers(request: Request) -> list[dict[str, Any]]:
    try:
        return live_workers(request.app.state.redis_sync)
    except RedisError:
        raise Problem(503, "Workers Unknown", "Which workers are alive cannot be read now (Redis is unavailable), "
                      "so a job asking for this many GPUs cannot be checked; try again shortly.",
                      headers={"Retry-After": "5"}) from None


def _with_status_message(job: JobOut, workers: list[dict[str, Any]], config: Settings) -> JobOut:
    if job.status == "queued":
        job.status_message = feasibility.waiting_message(job.request, workers, queue_base=config.queue,
                                                         default_backend=config.job_backend)
    return job


def _create_job(body: JobCreate, request: Request, checker: SpecChecker, config: Settings, tenant_id: str) -> bytes:
    with get_sessionmaker()() as session:
        job = service.create_job(session, tenant_id=tenant_id, request=body, checker=checker,
                                 max_attempts=config.max_attempts, queue_base=config.queue,
                                 max_waiting_gpus=config.max_waiting_job_gpus,
                                 live_workers=lambda: _live_workers(request),
                                 backends_seen=lambda: feasibility.seen_backends(request.app.state.redis_sync,
                                                                                 config.queue),
                                 default_backend=config.job_backend)
        # The answer is written inside the transaction, under the tenant's lock: its queue position is asked
        # there, not in a transaction of its own (BEGIN, query, ROLLBACK) after the commit.
        answer = _with_status_message(service.job_answer(session, tenant_id=tenant_id, job_id=job.id),
                                      _live_workers(request), config).model_dump_json().encode()
        session.commit()
        dispatch.send_job(request.app.state.redis_sync, session, job, config)
        return answer


# The two reads users poll hardest are async. On PostgreSQL their one statement runs on the event loop, on a
# connection of app/core/read_pool.py (no thread hop, no session); on SQLite in one worker thread on a session without
# a transaction. Either way pydantic writes the JSON from the response model: no second validation of the answer.
TOTAL_DOC = ("Also count the jobs these filters match: `exact` counts them (its cost grows with their number), "
             "`estimate` takes PostgreSQL's planner estimate (cheap at any size; exact on SQLite). Without it, "
             "`total` is given only when this first page holds them all.")
SORT_DOC = ("`created_at` (the default is `-created_at`: newest first), `name`, `metrics.<name>.best`, "
            "`metrics.<name>.final` or `params.<name>` (a param as in a job's `params`), with `-` before it for "
            "descending: `-metrics.val_accuracy.best`. Jobs without that name, metric or param come last, newest "
            "first.")
MAX_TAG_FILTERS = 20


def _iso_time(value: Any) -> Any:
    # pydantic also takes a number as seconds since 1970; a time in a query is ISO 8601, as the document says.
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError("an ISO 8601 date or time, such as 2026-12-01 or 2026-12-01T10:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]


async def list_jobs(limit: int = Query(50, ge=1, le=500),
                    cursor: str | None = Query(None, max_length=600, description="`next_cursor` of the page before"),
                    offset: int = Query(0, ge=0, le=10**9, deprecated=True,
                                        description="Skip this many jobs (deprecated: its cost grows with the "
                                                    "offset; use `cursor`)"),
                    total: str | None = Query(None, pattern="^(exact|estimate)$", description=TOTAL_DOC),
                    job_status: str | None = Query(None, alias="status", pattern=STATUS_PATTERN),
                    model_id: str | None = Query(None, pattern=r"^[0-9a-f]{32}$"),
                    tag: list[str] | None = Query(None, description="Only jobs with this tag; repeat it for jobs "
                                                  "with every one of them (`?tag=a&tag=b`)"),
                    name: str | None = Query(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                                             description="Only jobs whose name starts with this (case matters)"),
                    sweep_id: str | None = Query(None, pattern=r"^[0-9a-f]{32}$",
                                                 description="Only the trials of this sweep"),
                    created_after: IsoTime | None = Query(None, description="Only jobs created at or after this "
                                                          "time (ISO 8601; UTC without an offset)"),
                    created_before: IsoTime | None = Query(None, description="Only jobs created before this time"),
                    sort: str = Query("-created_at", max_length=300, description=SORT_DOC),
                    caller: Caller = Depends(current_caller)) -> Response:
    tags = tuple(dict.fromkeys(tag or ()))
    if len(tags) > MAX_TAG_FILTERS or any(not 1 <= len(item) <= 64 or CONTROL.search(item) for item in tags):
        raise Problem(422, "Invalid Tags", f"Filter by at most {MAX_TAG_FILTERS} tags of 1 to 64 characters each, "
                      "without control characters.", field="tag")
    try:
        order = listing.Sort.parse(sort)
    except ValueError as exc:
        raise Problem(422, "Invalid Sort", str(exc), field="sort") from None
    filters = listing.Filters(caller.tenant_id, job_status, model_id, tags, name, sweep_id, _utc(created_after),
                              _utc(created_before))
    after = _after(cursor, order)
    if after is not None and offset:
        raise Problem(422, "Invalid Paging", "Give a cursor or an offset, not both: the cursor says where the "
                      "page starts.", field="offset")
    # SQLite has no planner estimate to read: there, an estimate is a count (its databases are small).
    estimate = total == "estimate" and read_pool() is not None
    questions = [listing.page(filters, order, limit=limit, after=after, offset=offset)]
    if total is not None:
        questions.append(listing.count(filters, estimate=estimate))
    (items, last), *counted = await answer(*questions)
    next_cursor = _cursor(last, order)
    count, kind = (counted[0], "estimate" if estimate else "exact") if counted else (None, None)
    if last is None and after is None and (items or not offset) and (total is None or kind == "estimate"):
        # Nothing past this page, and it started at the top (or at an offset inside the list): the count is
        # known without counting.
        count, kind = offset + len(items), "exact"
    query = {"limit": limit, "status": job_status, "model_id": model_id, "tag": list(tags) or None, "name": name,
             "sweep_id": sweep_id, "created_after": created_after, "created_before": created_before,
             "sort": None if sort == "-created_at" else order.text}
    page = JobPage(items=items, limit=limit, next=_next_link(query, next_cursor), next_cursor=next_cursor,
                   total=count, total_kind=kind)
    return Response(page.model_dump_json().encode(), media_type="application/json")


# Its twelve query parameters validated as one model (app/http/query_model.py): the most polled list.
add_get_route(router, "", list_jobs, response_model=JobPage,
              summary="List jobs: filter by status, model, tags, name, sweep and date; sort by creation, name, any "
                      "metric or param; a page at a time",
              description="Keyset paging: follow `next` (or pass `next_cursor` as `cursor`) for the next page. A page "
                          "costs the same however deep it is, and jobs submitted meanwhile never shift a page: every "
                          "job is listed exactly once.")


def _utc(moment: datetime | None) -> datetime | None:
    """A time as the database compares it: in UTC (one without an offset is taken as UTC)."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # year 1 with an offset east of UTC, or 9999 west of it
        raise Problem(422, "Invalid Time", f"{moment.isoformat()} is outside the times a job can have.",
                      field="created_after") from None


def _after(cursor: str | None, order: listing.Sort) -> Any:
    if cursor is None:
        return None
    if order.kind == "created_at":
        return decode_cursor(cursor)
    return listing.Position(*decode_sorted_cursor(cursor, order.text, order.ranks))


def _cursor(last: Any, order: listing.Sort) -> str | None:
    if last is None:
        return None
    if order.kind == "created_at":
        return encode_cursor(*last)
    return encode_sorted_cursor(order.text, last.rank, last.value, last.created_at, last.id)


def _next_link(query: dict[str, Any], cursor: str | None) -> str | None:
    if cursor is None:
        return None
    values = {name: value.isoformat() if isinstance(value, datetime) else value
              for name, value in {**query, "cursor": cursor}.items() if value is not None}
    return "/v1/jobs?" + urlencode(values, doseq=True)


@router.get(JOB, response_model=JobOut, summary="A job's status, attempts, error and epoch history")
async def get_job(job_id: str, request: Request, caller: Caller = Depends(current_caller),
                  config: Settings = Depends(settings)) -> Response:
    [job] = await answer(repository.job_document(tenant_id=caller.tenant_id, job_id=job_id))
    if job is None:
        raise not_found("job", job_id)
    if job.status == "queued":
        # Only a queued job asks Redis who is alive (one HVALS); the status message says why it may wait forever.
        try:
            workers = alive(await request.app.state.redis_async.hvals(WORKERS_KEY))
        except RedisError:
            workers = None
        if workers is not None:
            _with_status_message(job, workers, config)
    return Response(job.model_dump_json().encode(), media_type="application/json")


@router.delete(JOB, status_code=status.HTTP_204_NO_CONTENT, summary="Delete a finished job and its artifacts")
def delete_job(job_id: str, request: Request, session: Session = Depends(get_session),
               caller: Caller = Depends(current_caller)) -> Response:
    service.delete_job(session, tenant_id=caller.tenant_id, job_id=job_id)
    session.commit()
    request.app.state.redis_sync.delete(events.stream_key(job_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{job_id}/cancel", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Cancel a job: at once if queued, at the next batch if running (DESIGN.md §9)",
             description="A running job stops after its current batch and ends `cancelled`, keeping the "
                         "weights it had reached as artifacts. A job that already ended answers 409.")
def cancel_job(job_id: str, request: Request, session: Session = Depends(get_session),
               config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> JobOut:
    outcome = service.cancel_job(session, tenant_id=caller.tenant_id, job_id=job_id)
    session.commit()
    dispatch.announce_cancel(request.app.state.redis_sync, job_id, outcome, config)
    return service.job_answer(session, tenant_id=caller.tenant_id, job_id=job_id)


@router.post("/{job_id}/retry", response_model=JobOut, summary="Run a failed or cancelled job again",
             description="The job is queued again as a new attempt, from the start; its epochs and artifacts "
                         "from before are removed.")
def retry_job(job_id: str, request: Request, session: Session = Depends(get_session),
              config: Settings = Depends(settings), caller: Caller = Depends(current_caller)) -> JobOut:
    job = service.retry_job(session, tenant_id=caller.tenant_id, job_id=job_id, max_attempts=config.max_attempts)
    session.commit()
    dispatch.send_job(request.app.state.redis_sync, session, job, config, retry=True)
    return service.job_answer(session, tenant_id=caller.tenant_id, job_id=job_id)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactOut], summary="What the job produced")
def list_artifacts(job_id: str, session: Session = Depends(get_session),
                   caller: Caller = Depends(current_caller)) -> list[ArtifactOut]:
    return [ArtifactOut(name=a.name, size_bytes=a.size_bytes, media_type=a.media_type, sha256=a.blob_sha256,
                        url=f"/v1/jobs/{job_id}/artifacts/{a.name}")
            for a in service.artifacts_of(session, tenant_id=caller.tenant_id, job_id=job_id)]


# Keras 3 loads weights only from files named *.weights.h5 (tutorial §5.1), so that is the download name.
DOWNLOAD_NAMES = {"weights.h5": "model.weights.h5"}


# Every media type an artifact is stored with (workers/exports.py, workers/callbacks.py).
ARTIFACT_MEDIA_TYPES = ("application/x-hdf5", "application/zip", "application/gzip", "application/json",
                        "application/yaml", "text/csv")


@router.get("/{job_id}/artifacts/{name}", summary="Download an artifact: weights.h5, architecture.json, ...",
            response_class=StreamingResponse, responses=file_response("The file", *ARTIFACT_MEDIA_TYPES))
def get_artifact(job_id: str, name: str, session: Session = Depends(get_session),
                 caller: Caller = Depends(current_caller)) -> StreamingResponse:
    artifact = service.get_artifact(session, tenant_id=caller.tenant_id, job_id=job_id, name=name)
    filename = DOWNLOAD_NAMES.get(artifact.name, artifact.name)
    return StreamingResponse(stream_blob(artifact.blob_sha256), media_type=artifact.media_type,
                             headers={"Content-Length": str(artifact.size_bytes),
                                      "Content-Disposition": content_disposition(filename)})
