"""Runs as experiments: name, tag and annotate a job (PATCH), and compare runs side by side.

Included before the jobs router (app/main.py): `/v1/jobs/compare` is matched before `/v1/jobs/{job_id}` takes it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from pydantic_core import to_json
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core.database import get_session
from app.experiments import repository, service
from app.experiments.schemas import Comparison, JobUpdate, comparison_example
from app.http.auth import Caller, current_caller
from app.http.paths import JOB
from app.http.reads import answer
from app.http.sessions import SessionReleasingRoute
from app.jobs import service as jobs
from app.jobs.schemas import JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=SessionReleasingRoute)


@router.get("/compare", response_model=Comparison, summary="Compare runs: params, metrics and aligned histories",
            description="Up to 500 of your jobs, in the order named: each one's params, metric summaries and "
                        "history per epoch (indexed by epoch number, null where an epoch has no value), the union "
                        "of their metric and param names, and the params whose values differ between them. An id "
                        "that is not one of your jobs is a 404 that names it.",
            responses={200: {"content": {"application/json": {"example": comparison_example()}}}})
async def compare_jobs(ids: str = Query(..., max_length=20_000, pattern="^[0-9a-f, ]+$",
                                        description=f"Job ids, comma-separated (at most {service.MAX_COMPARED})",
                                        examples=["0123456789abcdef0123456789abcdef"]),
                       caller: Caller = Depends(current_caller)) -> Response:
    wanted = service.compared_ids(ids)
    # Only what can be a job's id is looked up (not a 31-character typo): anything else is unknown as it is.
    asked = [job_id for job_id in wanted if service.ID.match(job_id)]
    runs, metrics, epochs = await answer(repository.runs(tenant_id=caller.tenant_id, ids=asked),
                                         repository.run_metrics(tenant_id=caller.tenant_id, ids=asked),
                                         repository.run_epochs(tenant_id=caller.tenant_id, ids=asked))
    service.missing_runs(wanted, (row.id for row in runs))
    # Decoding 500 runs' epochs and writing the document take tenths of a second of CPU (bench/compare.py): in a
    # worker thread, not on the event loop where every other request waits.
    body = await run_in_threadpool(lambda: to_json(service.comparison(wanted, runs, metrics, epochs)))
    return Response(body, media_type="application/json")


@router.patch(JOB, response_model=JobOut, summary="Name, tag or annotate a job",
              description="Change a job's `name`, `notes` or `tags` (the whole list, or `add_tags` / `remove_tags`) "
                          "at any time, whatever its status. Fields left out stay as they are; `name` or `notes` "
                          "null clears them. Another tenant's job is a 404.")
def update_job(job_id: str, body: JobUpdate, session: Session = Depends(get_session),
               caller: Caller = Depends(current_caller)) -> JobOut:
    service.update_job(session, tenant_id=caller.tenant_id, job_id=job_id, update=body)
    answered = jobs.job_answer(session, tenant_id=caller.tenant_id, job_id=job_id)
    session.commit()
    return answered
