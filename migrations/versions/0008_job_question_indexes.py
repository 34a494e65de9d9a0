"""jobs: an index per question (claim, expired leases, queue positions, list pages), built without blocking writes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

On PostgreSQL each index is built with CREATE INDEX CONCURRENTLY, outside a transaction: writes go on while a
table of millions of rows is read, and the only lock taken waits for transactions already running. A build
that was interrupted leaves an invalid index behind; running the migration again drops it and builds it anew.
The two indexes these replace ((queue, status) and (tenant_id, status), prefixes of the new ones or served by
the partial ones) are dropped the same way.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'

QUEUED = sa.text("status = 'queued'")
RUNNING = sa.text("status = 'running'")
# name -> (columns, partial condition or None)
INDEXES = {
    # The claim (a lane's next jobs), the tenants with a job waiting (a loose scan) and queue positions.
    'ix_jobs_queued_lane': (['queue', 'tenant_id', sa.text('priority DESC'), 'queue_ticket'], QUEUED),
    # Running jobs by lease: the reaper's and the claim's expired leases, the running jobs a tenant has.
    'ix_jobs_running_lease': (['lease_expires_at'], RUNNING),
    # A tenant's jobs newest first: the list, by status, by model (keyset pages).
    'ix_jobs_tenant_created': (['tenant_id', 'created_at', 'id'], None),
    'ix_jobs_tenant_status_created': (['tenant_id', 'status', 'created_at', 'id'], None),
    'ix_jobs_tenant_model_created': (['tenant_id', 'model_id', 'created_at', 'id'], None),
}
REPLACED = {'ix_jobs_queue_status': ['queue', 'status'], 'ix_jobs_tenant_status': ['tenant_id', 'status']}


def _drop_if_invalid(name: str) -> None:
    invalid = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
        "WHERE pg_class.relname = :name AND NOT pg_index.indisvalid"), {"name": name}).first()
    if invalid:
        op.drop_index(name, table_name='jobs', postgresql_concurrently=True)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        for name, (columns, where) in INDEXES.items():
            op.create_index(name, 'jobs', columns, sqlite_where=where)
        for name in REPLACED:
            op.drop_index(name, table_name='jobs')
        return
    with op.get_context().autocommit_block():
        for name, (columns, where) in INDEXES.items():
            _drop_if_invalid(name)
            op.create_index(name, 'jobs', columns, postgresql_where=where, postgresql_concurrently=True,
                            if_not_exists=True)
        for name in REPLACED:
            op.drop_index(name, table_name='jobs', postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if not postgresql:
        for name, columns in REPLACED.items():
            op.create_index(name, 'jobs', columns)
        for name in INDEXES:
            op.drop_index(name, table_name='jobs')
        return
    with op.get_context().autocommit_block():
        for name, columns in REPLACED.items():
            op.create_index(name, 'jobs', columns, postgresql_concurrently=True, if_not_exists=True)
        for name in INDEXES:
            op.drop_index(name, table_name='jobs', postgresql_concurrently=True, if_exists=True)
