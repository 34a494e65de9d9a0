"""A job's tags and params as the indexed rows the lists filter and sort on (`job_tags`, `job_params`): written
at submit by the experiments domain and for a sweep's trials by the sweep step, which workers also run."""

from __future__ import annotations

from sqlalchemy import text

from app.core.sql import Statement

_TAGS_ROWS = {"postgresql": "json_array_elements_text(CAST(:tags AS json)) AS r(tag)",
              "sqlite": "(SELECT value AS tag FROM json_each(:tags)) AS r"}
INSERT_TAGS = Statement(**{dialect: text(
    f"INSERT INTO job_tags (job_id, tenant_id, tag) SELECT :job_id, :tenant_id, r.tag FROM {rows} WHERE true")
    for dialect, rows in _TAGS_ROWS.items()})
INSERT_PARAMS = Statement(
    postgresql=text("INSERT INTO job_params (job_id, tenant_id, name, number, text) SELECT :job_id, :tenant_id, "
                    "r.name, r.number, r.text FROM json_to_recordset(CAST(:params AS json)) AS r(name text, "
                    "number double precision, text text)"),
    sqlite=text("INSERT INTO job_params (job_id, tenant_id, name, number, text) SELECT :job_id, :tenant_id, "
                "json_extract(r.value, '$.name'), json_extract(r.value, '$.number'), json_extract(r.value, '$.text') "
                "FROM json_each(:params) AS r WHERE true"))
