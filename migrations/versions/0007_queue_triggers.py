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
PostgreSQL the table is locked against writes (reads go on) while they are numbered and the triggers made:
the time it takes to number the queued jobs, not all jobs (bench/scale.py times it).

SQLite: Alembic's batch mode rebuilds a table by copying it, and a rebuilt table has no triggers. A later
migration that alters `jobs` in batch mode must create these triggers again (tests/test_queue_order.py checks
that a database at head keeps its lanes on SQLite as on PostgreSQL).
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

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

# The queued jobs numbered per lane in the order the scheduler took them until now, then the lanes and blocks.
BACKFILL = (
    "UPDATE jobs SET queue_ticket = numbered.n FROM (SELECT id, row_number() OVER (PARTITION BY tenant_id, queue, "
    "priority ORDER BY created_at, id) - 1 AS n FROM jobs WHERE status = 'queued') AS numbered "
    "WHERE jobs.id = numbered.id",
    "INSERT INTO queue_lanes (tenant_id, queue, priority, next_ticket) SELECT tenant_id, queue, priority, "
    "max(queue_ticket) + 1 FROM jobs WHERE status = 'queued' GROUP BY tenant_id, queue, priority",
    *(f"INSERT INTO queue_blocks (tenant_id, queue, priority, level, block, queued) SELECT tenant_id, queue, "
      f"priority, {level}, queue_ticket >> {shift}, count(*) FROM jobs WHERE status = 'queued' "
      f"GROUP BY tenant_id, queue, priority, queue_ticket >> {shift}"
      for level, shift in enumerate(SHIFTS)),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if postgresql:
        # Writes wait (reads go on) until this step commits: no job may change status between its numbering
        # and the triggers.
        op.execute("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE")
    for statement in BACKFILL:
        op.execute(statement)
    if postgresql:
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


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
