"""queue lanes kept by the database: tickets and per-block counts of queued jobs, from triggers on jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Every change of a job's status, whoever makes it (the API, a worker's claim, the reaper, an administrator's
SQL), keeps the queue's bookkeeping in the same transaction:

- a job entering the queue (inserted queued, or retried) takes its lane's next ticket; a job handed back by
  the reaper (running -> queued) keeps its ticket, so it goes back to its place;
- queue_blocks counts a lane's queued jobs per block at four levels: blocks of 32, 1,024 and 32,768 tickets
  and the whole lane (block = ticket >> 5, 10, 15, 63); a block at zero is deleted. A queue position then sums
  at most 31 blocks of each level and counts at most 31 jobs (app/jobs/repository.py).

The jobs queued when this runs get tickets in the order the scheduler served them (created_at, id). On
PostgreSQL they are numbered first without a lock, a chunk of rows a transaction; then writes to jobs wait
(reads go on) while the few queued meanwhile are numbered after them, the lanes and blocks of the queued jobs
are counted and the triggers made (bench/scale.py times both).

SQLite: Alembic's batch mode rebuilds a table by copying it, and a rebuilt table has no triggers. A later
migration that alters `jobs` in batch mode must create these triggers again (tests/test_queue_order.py checks
that a database at head keeps its lanes on SQLite as on PostgreSQL).
"""
from alembic import op

revision = '0007'
down_revision = '0006'

# As app/core/tables.py's QUEUE_LEVEL_SHIFTS: level -> shift from a ticket to its block.
SHIFTS = (5, 10, 15, 63)
LANE = "tenant_id = {row}.tenant_id AND queue = {row}.queue AND priority = {row}.priority"

PG_FUNCTION = f"""
CREATE FUNCTION jobs_keep_queue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lvl int;
    sh int;
    remaining int;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'queued' AND OLD.queue_ticket IS NOT NULL THEN
        FOR lvl IN 0..{len(SHIFTS) - 1} LOOP
            sh := (ARRAY{list(SHIFTS)})[lvl + 1];
            UPDATE queue_blocks SET queued = queued - 1
             WHERE {LANE.format(row='OLD')} AND level = lvl AND block = OLD.queue_ticket >> sh
            RETURNING queued INTO remaining;
            IF remaining <= 0 THEN
                DELETE FROM queue_blocks
                 WHERE {LANE.format(row='OLD')} AND level = lvl AND block = OLD.queue_ticket >> sh;
            END IF;
        END LOOP;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.status = 'queued' THEN
        IF TG_OP = 'INSERT' OR OLD.status <> 'running' OR NEW.queue_ticket IS NULL THEN
            INSERT INTO queue_lanes AS lane (tenant_id, queue, priority, next_ticket)
            VALUES (NEW.tenant_id, NEW.queue, NEW.priority, 1)
            ON CONFLICT (tenant_id, queue, priority) DO UPDATE SET next_ticket = lane.next_ticket + 1
            RETURNING lane.next_ticket - 1 INTO NEW.queue_ticket;
        END IF;
        FOR lvl IN 0..{len(SHIFTS) - 1} LOOP
            sh := (ARRAY{list(SHIFTS)})[lvl + 1];
            INSERT INTO queue_blocks AS b (tenant_id, queue, priority, level, block, queued)
            VALUES (NEW.tenant_id, NEW.queue, NEW.priority, lvl, NEW.queue_ticket >> sh, 1)
            ON CONFLICT (level, tenant_id, queue, priority, block) DO UPDATE SET queued = b.queued + 1;
        END LOOP;
    END IF;
    RETURN NEW;
END $$
"""
PG_TRIGGERS = (
    "CREATE TRIGGER jobs_queue_insert BEFORE INSERT ON jobs FOR EACH ROW WHEN (NEW.status = 'queued') "
    "EXECUTE FUNCTION jobs_keep_queue()",
    "CREATE TRIGGER jobs_queue_update BEFORE UPDATE OF status ON jobs FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION jobs_keep_queue()",
    "CREATE TRIGGER jobs_queue_delete BEFORE DELETE ON jobs FOR EACH ROW WHEN (OLD.status = 'queued') "
    "EXECUTE FUNCTION jobs_keep_queue()",
)


def _count_in(ticket: str) -> str:
    """SQLite: one more queued job in each level's block of `ticket` (an SQL expression)."""
    return "".join(
        "INSERT INTO queue_blocks (tenant_id, queue, priority, level, block, queued) "
        f"VALUES (NEW.tenant_id, NEW.queue, NEW.priority, {level}, ({ticket}) >> {shift}, 1) "
        "ON CONFLICT (level, tenant_id, queue, priority, block) DO UPDATE SET queued = queued + 1;\n"
        for level, shift in enumerate(SHIFTS))


def _count_out() -> str:
    """SQLite: one queued job fewer in each level's block of OLD's ticket; blocks at zero deleted."""
    return "".join(
        f"UPDATE queue_blocks SET queued = queued - 1 WHERE {LANE.format(row='OLD')} AND level = {level} "
        f"AND block = OLD.queue_ticket >> {shift};\n"
        f"DELETE FROM queue_blocks WHERE {LANE.format(row='OLD')} AND level = {level} "
        f"AND block = OLD.queue_ticket >> {shift} AND queued <= 0;\n"
        for level, shift in enumerate(SHIFTS))


# SQLite's triggers have no IF: one trigger per case, each with its WHEN. A new ticket is written into the row
# after the insert or update (SQLite's triggers cannot change NEW).
_TAKE_TICKET = (
    "INSERT INTO queue_lanes (tenant_id, queue, priority, next_ticket) VALUES (NEW.tenant_id, NEW.queue, "
    "NEW.priority, 1) ON CONFLICT (tenant_id, queue, priority) DO UPDATE SET next_ticket = next_ticket + 1;\n"
    f"UPDATE jobs SET queue_ticket = (SELECT next_ticket - 1 FROM queue_lanes WHERE {LANE.format(row='NEW')}) "
    "WHERE id = NEW.id;\n" + _count_in("SELECT queue_ticket FROM jobs WHERE id = NEW.id"))
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER jobs_queue_insert AFTER INSERT ON jobs WHEN NEW.status = 'queued' BEGIN {_TAKE_TICKET} END",
    "CREATE TRIGGER jobs_queue_enter AFTER UPDATE OF status ON jobs WHEN NEW.status = 'queued' "
    "AND OLD.status IS NOT 'queued' AND (OLD.status IS NOT 'running' OR OLD.queue_ticket IS NULL) "
    f"BEGIN {_TAKE_TICKET} END",
    "CREATE TRIGGER jobs_queue_return AFTER UPDATE OF status ON jobs WHEN NEW.status = 'queued' "
    f"AND OLD.status = 'running' AND OLD.queue_ticket IS NOT NULL BEGIN {_count_in('NEW.queue_ticket')} END",
    "CREATE TRIGGER jobs_queue_leave AFTER UPDATE OF status ON jobs WHEN OLD.status = 'queued' "
    f"AND NEW.status IS NOT 'queued' AND OLD.queue_ticket IS NOT NULL BEGIN {_count_out()} END",
    "CREATE TRIGGER jobs_queue_delete AFTER DELETE ON jobs WHEN OLD.status = 'queued' "
    f"AND OLD.queue_ticket IS NOT NULL BEGIN {_count_out()} END",
)
SQLITE_TRIGGER_NAMES = ("jobs_queue_insert", "jobs_queue_enter", "jobs_queue_return", "jobs_queue_leave",
                        "jobs_queue_delete")

LANE_COLUMNS = "tenant_id, queue, priority"
LANE_MATCH = "late.tenant_id = top.tenant_id AND late.queue = top.queue AND late.priority = top.priority"
# The queued jobs' tickets: per lane, in the order the scheduler took them until now (created_at, id).
NUMBERED = (f"SELECT id, {LANE_COLUMNS}, row_number() OVER (PARTITION BY {LANE_COLUMNS} ORDER BY created_at, id) - 1 "
            "AS n FROM jobs WHERE status = 'queued'")
# SQLite (the embedded database: small): in one transaction, as it has one writer anyway.
SQLITE_BACKFILL = (
    f"UPDATE jobs SET queue_ticket = numbered.n FROM ({NUMBERED}) AS numbered WHERE jobs.id = numbered.id",
    f"INSERT INTO queue_lanes ({LANE_COLUMNS}, next_ticket) SELECT {LANE_COLUMNS}, max(queue_ticket) + 1 FROM jobs "
    f"WHERE status = 'queued' GROUP BY {LANE_COLUMNS}",
    *(f"INSERT INTO queue_blocks (level, {LANE_COLUMNS}, block, queued) SELECT {level}, {LANE_COLUMNS}, "
      f"queue_ticket >> {shift}, count(*) FROM jobs WHERE status = 'queued' "
      f"GROUP BY {LANE_COLUMNS}, queue_ticket >> {shift}"
      for level, shift in enumerate(SHIFTS)),
)
# PostgreSQL, first without any lock, a chunk of rows a transaction: the jobs queued now get their tickets; the
# highest ticket of each lane is kept for what follows.
CHUNK = 20_000
PG_NUMBER = (f"CREATE TEMP TABLE kerasd_numbered AS SELECT numbered.*, row_number() OVER (ORDER BY id) AS chunk "
             f"FROM ({NUMBERED}) AS numbered",
             "CREATE INDEX ON kerasd_numbered (chunk)",
             f"CREATE TEMP TABLE kerasd_top AS SELECT {LANE_COLUMNS}, max(n) AS n FROM kerasd_numbered "
             f"GROUP BY {LANE_COLUMNS}")
PG_NUMBER_CHUNK = ("UPDATE jobs SET queue_ticket = k.n FROM kerasd_numbered AS k WHERE jobs.id = k.id "
                   "AND k.chunk > {low} AND k.chunk <= {high}")
# Then with writes held: the jobs queued meanwhile without a ticket (submitted, or handed back by the reaper)
# after every ticket given, the lanes' next tickets, and the blocks of what is queued now: the smallest level
# from the jobs (one pass), each larger one from the level below it.
PG_UNDER_LOCK = (
    "LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE",
    f"WITH late AS (UPDATE jobs SET queue_ticket = coalesce(top.n, -1) + late.n FROM (SELECT id, {LANE_COLUMNS}, "
    f"row_number() OVER (PARTITION BY {LANE_COLUMNS} ORDER BY created_at, id) AS n FROM jobs WHERE status = "
    f"'queued' AND queue_ticket IS NULL) AS late LEFT JOIN kerasd_top AS top ON {LANE_MATCH} "
    f"WHERE jobs.id = late.id RETURNING jobs.tenant_id, jobs.queue, jobs.priority, jobs.queue_ticket) "
    f"INSERT INTO queue_lanes ({LANE_COLUMNS}, next_ticket) SELECT {LANE_COLUMNS}, max(ticket) + 1 FROM ("
    f"SELECT {LANE_COLUMNS}, n AS ticket FROM kerasd_top UNION ALL SELECT {LANE_COLUMNS}, queue_ticket FROM late) "
    f"AS given GROUP BY {LANE_COLUMNS}",
    f"INSERT INTO queue_blocks (level, {LANE_COLUMNS}, block, queued) SELECT 0, {LANE_COLUMNS}, "
    f"queue_ticket >> {SHIFTS[0]}, count(*) FROM jobs WHERE status = 'queued' "
    f"GROUP BY {LANE_COLUMNS}, queue_ticket >> {SHIFTS[0]}",
    *(f"INSERT INTO queue_blocks (level, {LANE_COLUMNS}, block, queued) SELECT {level}, {LANE_COLUMNS}, "
      f"block >> {shift - SHIFTS[0]}, sum(queued) FROM queue_blocks WHERE level = 0 "
      f"GROUP BY {LANE_COLUMNS}, block >> {shift - SHIFTS[0]}"
      for level, shift in enumerate(SHIFTS) if level),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        for statement in (*SQLITE_BACKFILL, *SQLITE_TRIGGERS):
            op.execute(statement)
        return
    connection = op.get_bind()
    with op.get_context().autocommit_block():
        for statement in PG_NUMBER:
            op.execute(statement)
        total = connection.exec_driver_sql("SELECT count(*) FROM kerasd_numbered").scalar()
        for low in range(0, total, CHUNK):
            op.execute(PG_NUMBER_CHUNK.format(low=low, high=low + CHUNK))
    # Writes wait (reads go on) until this step commits: no job may change status between the last numbering
    # and the triggers. What remains to do here is the lanes and blocks of the queued jobs.
    for statement in PG_UNDER_LOCK:
        op.execute(statement)
    op.execute(PG_FUNCTION)
    for statement in PG_TRIGGERS:
        op.execute(statement)
    op.execute("DROP TABLE kerasd_numbered, kerasd_top")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in ('jobs_queue_insert', 'jobs_queue_update', 'jobs_queue_delete'):
            op.execute(f"DROP TRIGGER {name} ON jobs")
        op.execute("DROP FUNCTION jobs_keep_queue()")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.execute("DELETE FROM queue_blocks")
    op.execute("DELETE FROM queue_lanes")
    op.execute("UPDATE jobs SET queue_ticket = NULL")
