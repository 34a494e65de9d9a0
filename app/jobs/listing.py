"""The lists of jobs as the API asks them: what a job answer selects of a row, and pages of a tenant's jobs by
status, model, tags, name prefix, sweep and dates, sorted by creation, name, a metric or a param, a page at a
time by keyset cursors. (The single job's answer is in app/jobs/repository.py, with the same columns.)

Each sort is a few ordered parts, each read through an index and cut at the page's size: for a metric, the jobs
that have it, in the order of ix_job_metrics_best (or _final), then the jobs without it, newest first; for a param,
those with a number, those with a text, those without; for the name, named jobs then the others. A cursor says in
which part the page ended and where (the value and the id, or for the part without values the creation time and
id), so the next page starts there and costs the same however deep it is. The parts are joined by UNION ALL under
one ORDER BY of at most a few pages' rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import DateTime, bindparam, text

from app.core.sql import Question, Statement, scalar
from app.core.tables import QUEUE_LEVEL_SHIFTS, Job
from app.jobs.answers import job_out, parse_json

_COLUMNS = ("jobs.id, jobs.tenant_id, jobs.kind, jobs.status, jobs.model_id, jobs.attempt, jobs.max_attempts, "
            "jobs.created_at, jobs.started_at, jobs.finished_at, jobs.error, jobs.cancel_requested_at, jobs.queue, "
            "{submitted} AS submitted, jobs.result, jobs.name, jobs.tags, jobs.notes, jobs.params, jobs.sweep_id, "
            "{metrics} AS metrics")


def _position_sql() -> str:
    """A queued job's place: 1 + the tenant's queued jobs in the queue with a more urgent priority (the lanes'
    totals) + those of its own lane with a lower ticket, summed from the blocks of each level below the whole
    lane (at most 31 each: the blocks before its own inside the next level's block) + the jobs of its own
    smallest block before it (at most 31, counted through the partial index of queued jobs)."""
    *levels, lane = QUEUE_LEVEL_SHIFTS
    same_lane = "b.tenant_id = jobs.tenant_id AND b.queue = jobs.queue AND b.priority = jobs.priority"
    parts = ["coalesce((SELECT sum(b.queued) FROM queue_blocks AS b WHERE b.tenant_id = jobs.tenant_id "
             f"AND b.queue = jobs.queue AND b.priority > jobs.priority AND b.level = {len(levels)}), 0)"]
    for level, shift in enumerate(levels):
        upper = (levels[level + 1] if level + 1 < len(levels) else lane)
        start = f"((jobs.queue_ticket >> {upper}) << {upper - shift})" if upper != lane else "0"
        parts.append(f"coalesce((SELECT sum(b.queued) FROM queue_blocks AS b WHERE {same_lane} AND b.level = {level} "
                     f"AND b.block >= {start} AND b.block < (jobs.queue_ticket >> {shift})), 0)")
    smallest = levels[0]
    parts.append("(SELECT count(*) FROM jobs AS ahead WHERE ahead.queue = jobs.queue AND ahead.tenant_id = "
                 "jobs.tenant_id AND ahead.status = 'queued' AND ahead.priority = jobs.priority AND "
                 f"ahead.queue_ticket >= ((jobs.queue_ticket >> {smallest}) << {smallest}) "
                 "AND ahead.queue_ticket < jobs.queue_ticket)")
    return "CASE WHEN jobs.status = 'queued' THEN 1 + " + " + ".join(parts) + " END AS queue_position"


POSITION = _position_sql()
# The submitted request only (the stored one holds resolved arrays and more), the epochs as
# [[epoch, attempt, logs], ...] in epoch order, or NULL without epochs, and the metric summaries as
# {name: [final, best, best_epoch]} (NULL or {} without any).
DIALECT = {
    "postgresql": {"submitted": "jobs.request -> 'submitted'",
                   "epochs": "(SELECT json_agg(json_build_array(e.epoch, e.attempt, e.logs) ORDER BY e.epoch) "
                             "FROM job_epochs AS e WHERE e.job_id = jobs.id)",
                   "metrics": "(SELECT json_object_agg(m.name, json_build_array(m.final, m.best, m.best_epoch)) "
                              "FROM job_metrics AS m WHERE m.job_id = jobs.id)"},
    "sqlite": {"submitted": "json_extract(jobs.request, '$.submitted')",
               "epochs": "(SELECT json_group_array(json_array(e.epoch, e.attempt, json(e.logs))) FROM "
                         "(SELECT epoch, attempt, logs FROM job_epochs WHERE job_id = jobs.id ORDER BY epoch) AS e)",
               # SQLite's JSON functions write a REAL with 15 digits; printf's %!.17g keeps every bit of it.
               "metrics": "(SELECT json_group_object(m.name, json_array({final}, {best}, m.best_epoch)) "
                          "FROM job_metrics AS m WHERE m.job_id = jobs.id)".format(
                              **{column: f"CASE WHEN m.{column} IS NULL THEN NULL ELSE "
                                         f"json(printf('%!.17g', m.{column})) END" for column in ("final", "best")})},
}
# Types attached so that each driver's values come back as the ORM gives them (timestamps as datetimes on SQLite).
TYPES = {"created_at": Job.created_at.type, "started_at": Job.started_at.type, "finished_at": Job.finished_at.type,
         "cancel_requested_at": Job.cancel_requested_at.type}
_STAMPS = ("after_created_at", "created_after", "created_before")


def columns(dialect: str) -> str:
    """What every job answer selects of a row (`jobs` in the FROM clause): all but the epochs."""
    return _COLUMNS.format(**DIALECT[dialect])


def per_dialect(build: Any) -> Statement:
    return Statement(**{dialect: build(dialect) for dialect in DIALECT})


def _typed(clause: Any, sql: str) -> Any:
    # Timestamps bound as the column stores them (SQLite keeps text; a datetime must be written the same way).
    stamps = [bindparam(name, type_=DateTime(timezone=True)) for name in _STAMPS if f":{name}" in sql]
    return clause.bindparams(*stamps) if stamps else clause


# --- filters -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """Which of a tenant's jobs a list holds: all of the given conditions (every tag, the name's prefix)."""

    tenant_id: str
    status: str | None = None
    model_id: str | None = None
    tags: tuple[str, ...] = ()
    name: str | None = None
    sweep_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @property
    def shape(self) -> tuple[Any, ...]:
        """What the SQL depends on (which filters are given, how many tags), not their values."""
        return (self.status is not None, self.model_id is not None, len(self.tags), self.name is not None,
                self.sweep_id is not None, self.created_after is not None, self.created_before is not None)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"tenant_id": self.tenant_id}
        for name in ("status", "model_id", "sweep_id", "created_after", "created_before"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        params.update({f"tag{index}": tag for index, tag in enumerate(self.tags)})
        if self.name is not None:
            params.update(name_prefix=self.name, name_length=len(self.name))
        return params


@functools.cache
def _where(shape: tuple[Any, ...]) -> str:
    status, model, tags, name, sweep, after, before = shape
    parts = ["jobs.tenant_id = :tenant_id"]
    parts += ["jobs.status = :status"] if status else []
    parts += ["jobs.model_id = :model_id"] if model else []
    parts += [f"EXISTS (SELECT 1 FROM job_tags AS t{i} WHERE t{i}.job_id = jobs.id AND t{i}.tag = :tag{i})"
              for i in range(tags)]
    # A prefix compared as it is (case and all), the same on both databases (LIKE differs: SQLite's ignores case).
    parts += ["substr(jobs.name, 1, :name_length) = :name_prefix"] if name else []
    parts += ["jobs.sweep_id = :sweep_id"] if sweep else []
    parts += ["jobs.created_at >= :created_after"] if after else []
    parts += ["jobs.created_at < :created_before"] if before else []
    return " AND ".join(parts)


# --- sorts ---------------------------------------------------------------------------------------------------------

SORT_FORMS = ("created_at", "name", "metrics.<name>.best", "metrics.<name>.final", "params.<name>")


@dataclass(frozen=True)
class Sort:
    kind: Literal["created_at", "name", "metric", "param"]
    descending: bool
    target: str = ""  # the metric's or param's name
    field: Literal["best", "final", ""] = ""

    @classmethod
    def parse(cls, text_: str) -> Sort:
        """`-metrics.val_loss.best` and the like; ValueError with what is wrong."""
        descending = text_.startswith("-")
        key = text_.removeprefix("-").removeprefix("+")
        if any(ord(character) < 32 or ord(character) == 127 for character in key):
            raise ValueError("a sort cannot hold control characters")
        if key in ("created_at", "name"):
            return cls(key, descending)  # type: ignore[arg-type]
        if key.startswith("metrics."):
            target, _, field = key.removeprefix("metrics.").rpartition(".")
            if target and field in ("best", "final"):
                return cls("metric", descending, target, field)  # type: ignore[arg-type]
        elif key.startswith("params.") and len(key) > len("params."):
            return cls("param", descending, key.removeprefix("params."))
        raise ValueError(f"cannot sort by {text_!r}: sort by one of {', '.join(SORT_FORMS)}, with '-' before it "
                         "for descending (-metrics.val_accuracy.best)")

    @property
    def text(self) -> str:
        key = {"metric": f"metrics.{self.target}.{self.field}", "param": f"params.{self.target}"}.get(
            self.kind, self.kind)
        return ("-" if self.descending else "") + key

    @property
    def ranks(self) -> int:
        """How many parts the sort reads (the last holds the jobs without a value)."""
        return {"created_at": 1, "name": 2, "metric": 2, "param": 3}[self.kind]


NEWEST_FIRST = Sort("created_at", True)


def _parts(sort: Sort) -> list[tuple[str, str, str, str]]:
    """The parts with values: (join, condition, value, id expression); the value decides the column it fills
    (sort_number or sort_text)."""
    if sort.kind == "metric":
        join = "JOIN job_metrics AS s ON s.job_id = jobs.id"
        condition = f"s.tenant_id = :tenant_id AND s.name = :sort_name AND s.{sort.field} IS NOT NULL"
        return [(join, condition, f"s.{sort.field}", "s.job_id")]
    if sort.kind == "param":
        join = "JOIN job_params AS s ON s.job_id = jobs.id"
        condition = "s.tenant_id = :tenant_id AND s.name = :sort_name AND s.{} IS NOT NULL"
        return [(join, condition.format("number"), "s.number", "s.job_id"),
                (join, condition.format("text"), "s.text", "s.job_id")]
    return [("", "jobs.name IS NOT NULL", "jobs.name", "jobs.id")]


def _valueless(sort: Sort) -> str:
    if sort.kind == "metric":
        return ("NOT EXISTS (SELECT 1 FROM job_metrics AS s WHERE s.job_id = jobs.id AND s.name = :sort_name "
                f"AND s.{sort.field} IS NOT NULL)")
    if sort.kind == "param":
        return "NOT EXISTS (SELECT 1 FROM job_params AS s WHERE s.job_id = jobs.id AND s.name = :sort_name)"
    return "jobs.name IS NULL"


@functools.cache
def _sorted_page(shape: tuple[Any, ...], sort: Sort, start: int, after: bool) -> Statement:
    """The parts from rank `start` on (after a cursor in part `start`, that part from past it), each ordered and
    cut at :window rows, then ordered together: rank, value, newest first where there is no value, id. A part
    reads only the rows the parts before it left to fill, its LIMIT computed once before it runs: a page of jobs
    that all have the metric never walks the jobs looking for one without it (at 10,000 jobs that walk was 40
    of the 48 ms a page took in PostgreSQL, bench/compare.py). A LIMIT of 0 and not a WHERE condition, because
    PostgreSQL starts the parallel workers of a plan before a condition in it is tested, and never under a
    LIMIT 0."""
    where = _where(shape)
    way, past = ("DESC", "<") if sort.descending else ("ASC", ">")
    parts: list[tuple[int, str]] = []

    def limit() -> str:
        if not parts:
            return ":window"
        left = ":window - " + " - ".join(f"(SELECT count(*) FROM p{rank})" for rank, _ in parts)
        return f"(SELECT CASE WHEN {left} > 0 THEN {left} ELSE 0 END)"

    for rank, (join, condition, value, ident) in enumerate(_parts(sort)):
        if rank < start:
            continue
        keyset = f" AND ({value}, {ident}) {past} (:after_value, :after_id)" if after and rank == start else ""
        number, text_ = (value, "CAST(NULL AS text)") if value in ("s.number", "s.best", "s.final") else (
            "CAST(NULL AS double precision)", value)
        parts.append((rank, f"SELECT jobs.id AS id, {rank} AS sort_rank, {number} AS sort_number, {text_} AS "
                            "sort_text, CAST(NULL AS timestamp with time zone) AS sort_created FROM jobs "
                            f"{join} WHERE {where} AND {condition}{keyset} ORDER BY {value} {way}, {ident} {way} "
                            f"LIMIT {limit()}"))
    last = sort.ranks - 1
    keyset = (f" AND (jobs.created_at < :after_created_at OR (jobs.created_at = :after_created_at AND jobs.id {past} "
              ":after_id))") if after and start == last else ""
    parts.append((last, f"SELECT jobs.id AS id, {last} AS sort_rank, CAST(NULL AS double precision) AS sort_number, "
                        "CAST(NULL AS text) AS sort_text, jobs.created_at AS sort_created FROM jobs "
                        f"WHERE {where} AND {_valueless(sort)}{keyset} ORDER BY jobs.created_at DESC, "
                        f"jobs.id {way} LIMIT {limit()}"))
    ctes = ", ".join(f"p{rank} AS ({select})" for rank, select in parts)
    union = " UNION ALL ".join(f"SELECT * FROM p{rank}" for rank, _ in parts)

    def build(dialect: str) -> Any:
        sql = (f"WITH {ctes} SELECT {columns(dialect)}, {POSITION}, page.sort_rank, page.sort_number, "
               f"page.sort_text, page.sort_created FROM ({union}) AS page JOIN jobs ON jobs.id = page.id "
               f"ORDER BY page.sort_rank, page.sort_number {way}, page.sort_text {way}, page.sort_created DESC, "
               f"page.id {way} LIMIT :limit OFFSET :offset")
        return _typed(text(sql).columns(**TYPES, sort_created=Job.created_at.type), sql)
    return per_dialect(build)


@functools.cache
def _newest_page(shape: tuple[Any, ...], descending: bool, after: bool) -> Statement:
    """By (created_at, id): after a cursor, the rows past it in the index of the filters given
    (ix_jobs_tenant_created, _status_created, _model_created); without one, from the top. OFFSET is 0 unless a
    client still pages by offset."""
    way, past = ("DESC", "<") if descending else ("ASC", ">")

    def build(dialect: str) -> Any:
        keyset = f" AND (jobs.created_at, jobs.id) {past} (:after_created_at, :after_id)" if after else ""
        sql = (f"SELECT {columns(dialect)}, {POSITION} FROM jobs WHERE {_where(shape)}{keyset} "
               f"ORDER BY jobs.created_at {way}, jobs.id {way} LIMIT :limit OFFSET :offset")
        return _typed(text(sql).columns(**TYPES), sql)
    return per_dialect(build)


@dataclass(frozen=True)
class Position:
    """Where a sorted page ended: its last row's part, value (number or text), creation time and id."""

    rank: int
    value: float | str | None
    created_at: datetime | None
    id: str


def page(filters: Filters, sort: Sort, *, limit: int, after: Position | tuple[Any, str] | None = None,
         offset: int = 0) -> Question[tuple[list[Any], Any]]:
    """A page of the filtered jobs in the sort's order, without epochs: (items, where it ended if more rows follow,
    else None): (created_at, id) for the created_at sorts, a Position for the others. One row more than the page
    is read to know."""
    params: dict[str, Any] = {**filters.params(), "limit": limit + 1, "offset": offset}
    if sort.kind == "created_at":
        if after is not None:
            params["after_created_at"], params["after_id"] = after  # type: ignore[misc]
        statement = _newest_page(filters.shape, sort.descending, after is not None)
    else:
        start = 0
        if isinstance(after, Position):
            start = after.rank
            params.update(after_value=after.value, after_created_at=after.created_at, after_id=after.id)
        params.update(sort_name=sort.target, window=limit + 1 + offset)
        statement = _sorted_page(filters.shape, sort, start, isinstance(after, Position))

    def shape(rows: list[Any]) -> tuple[list[Any], Any]:
        items = [job_out(row, request=parse_json(row.submitted) or {}, epochs=[], queue_position=row.queue_position)
                 for row in rows[:limit]]
        if len(rows) <= limit:
            return items, None
        end = rows[limit - 1]
        if sort.kind == "created_at":
            return items, (end.created_at, end.id)
        value = end.sort_number if end.sort_number is not None else end.sort_text
        return items, Position(end.sort_rank, value, end.sort_created, end.id)
    return Question(statement, params, shape)


@functools.cache
def _count(shape: tuple[Any, ...]) -> Statement:
    sql = f"SELECT count(*) FROM jobs WHERE {_where(shape)}"
    return Statement(_typed(text(sql), sql))


@functools.cache
def _estimate(shape: tuple[Any, ...]) -> Statement:
    # The planner's row estimate for the same WHERE: planning only, nothing is read.
    sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM jobs WHERE {_where(shape)}"
    return Statement(postgresql=_typed(text(sql), sql))


def count(filters: Filters, *, estimate: bool) -> Question[int]:
    """The number of the filtered jobs: counted (its cost grows with them), or PostgreSQL's planner estimate (a
    plan, no rows read)."""
    if estimate:
        return Question(_estimate(filters.shape), filters.params(),
                        lambda rows: int(parse_json(rows[0][0])[0]["Plan"]["Plan Rows"]))
    return Question(_count(filters.shape), filters.params(), scalar)


# The repository's questions as they were first asked (status and model only, newest first).
def job_page(*, tenant_id: str, status: str | None, model_id: str | None, limit: int,
             after: tuple[Any, str] | None = None, offset: int = 0) -> Question[tuple[list[Any], Any]]:
    """A page of the tenant's jobs by status and model, newest first (as `page`)."""
    return page(Filters(tenant_id, status, model_id), NEWEST_FIRST, limit=limit, after=after, offset=offset)


def job_count(*, tenant_id: str, status: str | None, model_id: str | None, estimate: bool) -> Question[int]:
    return count(Filters(tenant_id, status, model_id), estimate=estimate)
