"""Path segments routes share. A job's id in `/v1/jobs/{job_id}` never reads `compare`: `/v1/jobs/compare` is a
resource of its own, so a method it lacks is a 405 naming its own methods, not a job called "compare"."""

from __future__ import annotations

from starlette.convertors import StringConvertor, register_url_convertor


class JobIdConvertor(StringConvertor):
    # Any other segment still reaches the route, which answers a 404 for an id that is no job.
    regex = "(?!compare$)[^/]+"


register_url_convertor("job_id", JobIdConvertor())
# `/v1/jobs` + JOB: the path of one job (the OpenAPI document shows it as /v1/jobs/{job_id}).
JOB = "/{job_id:job_id}"
