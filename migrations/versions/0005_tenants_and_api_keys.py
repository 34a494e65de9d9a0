"""tenants, API keys, tenant_id on every resource; jobs.queue and jobs.priority for the fair scheduler

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Rows that exist already belong to the tenant 'default', which the embedded default's keyless requests use.
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, sha256_column, time_column

revision = '0005'
down_revision = '0004'

DEFAULT_TENANT_ID = 'default'
RESOURCE_TABLES = ('models', 'datasets', 'weights_files')


def upgrade() -> None:
    op.create_table('tenants',
    id_column('id'),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('max_running_jobs', sa.Integer(), nullable=True),
    sa.Column('max_queued_jobs', sa.Integer(), nullable=True),
    sa.Column('max_stored_bytes', sa.BigInteger(), nullable=True),
    sa.Column('requests_per_s', sa.Float(), nullable=True),
    sa.Column('request_burst', sa.Integer(), nullable=True),
    time_column('last_claim_at', nullable=True),
    time_column('created_at'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_tenants_name')
    )
    op.create_table('api_keys',
    id_column('id'),
    id_column('tenant_id'),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sha256_column('key_sha256'),
    sa.Column('role', sa.String(length=16), nullable=False),
    time_column('created_at'),
    time_column('revoked_at', nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prefix', name='uq_api_keys_prefix')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_tenant_id'), ['tenant_id'], unique=False)

    tenants = sa.table('tenants', sa.column('id', sa.String), sa.column('name', sa.String),
                       sa.column('created_at', sa.DateTime(timezone=True)))
    op.execute(tenants.insert().values(id=DEFAULT_TENANT_ID, name='default', created_at=datetime.now(UTC)))

    # Add each column nullable, fill it, then make it NOT NULL: works on PostgreSQL and (in batch mode) SQLite.
    for table in (*RESOURCE_TABLES, 'jobs'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(id_column('tenant_id', nullable=True))
        op.execute(sa.text(f'UPDATE {table} SET tenant_id = :tenant').bindparams(tenant=DEFAULT_TENANT_ID))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=True))
    _fill_queue_and_priority()

    for table in RESOURCE_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('tenant_id', existing_type=sa.String(length=32), nullable=False)
            batch_op.create_index(batch_op.f(f'ix_{table}_tenant_id'), ['tenant_id'], unique=False)
            batch_op.create_foreign_key(f'fk_{table}_tenant_id_tenants', 'tenants', ['tenant_id'], ['id'])
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column('queue', existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column('priority', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_jobs_tenant_id_tenants', 'tenants', ['tenant_id'], ['id'])
        batch_op.create_index('ix_jobs_queue_status', ['queue', 'status'], unique=False)
        batch_op.create_index('ix_jobs_tenant_status', ['tenant_id', 'status'], unique=False)


def _fill_queue_and_priority() -> None:
    """Both were only inside the JSON `request` until now; jobs from before queues existed used KERASD_QUEUE."""
    from app.core.settings import get_settings

    fallback_queue = get_settings().queue
    connection = op.get_bind()
    jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('request', sa.JSON),
                    sa.column('queue', sa.String), sa.column('priority', sa.Integer))
    for job_id, request in connection.execute(sa.select(jobs.c.id, jobs.c.request)).all():
        request = request or {}
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(
            queue=request.get('queue') or fallback_queue, priority=int(request.get('priority', 5))))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_tenant_status')
        batch_op.drop_index('ix_jobs_queue_status')
        batch_op.drop_constraint('fk_jobs_tenant_id_tenants', type_='foreignkey')
        batch_op.drop_column('priority')
        batch_op.drop_column('queue')
        batch_op.drop_column('tenant_id')
    for table in RESOURCE_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_tenant_id_tenants', type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_{table}_tenant_id'))
            batch_op.drop_column('tenant_id')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_tenant_id'))
    op.drop_table('api_keys')
    op.drop_table('tenants')
