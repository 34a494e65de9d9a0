"""sweeps and their trials; on PostgreSQL, the schema `optuna` that sweeps' studies are kept in

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-05

Two new tables, nothing existing changes (their indexes are built in the transaction: the tables are empty).
Optuna's own tables (studies, trials, ...) are not ours: Optuna creates them, and upgrades them with its own
migrations (`optuna storage upgrade`), in the schema made here, where its `alembic_version` cannot meet ours
(app/core/studies.py, docs/design.md). SQLite has no schemas: there the studies are a file beside the database.
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, time_column

revision = '0012'
down_revision = '0011'

RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table('sweeps',
    id_column('id'),
    id_column('tenant_id'),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('study_name', sa.String(length=100), nullable=False),
    sa.Column('trials_created', sa.Integer(), nullable=False),
    time_column('created_at'),
    time_column('finished_at', nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sweeps_tenant_created', 'sweeps', ['tenant_id', 'created_at', 'id'])
    op.create_index('ix_sweeps_running', 'sweeps', ['status'], postgresql_where=RUNNING, sqlite_where=RUNNING)
    op.create_table('sweep_trials',
    id_column('sweep_id'),
    sa.Column('number', sa.Integer(), nullable=False),
    id_column('job_id'),
    sa.Column('optuna_trial_id', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('objective', sa.Float(), nullable=True),
    time_column('told_at', nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'number'),
    sa.UniqueConstraint('job_id')
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE SCHEMA IF NOT EXISTS optuna')


def downgrade() -> None:
    # The schema `optuna` stays: it holds Optuna's tables, which Optuna made, not this migration.
    op.drop_table('sweep_trials')
    op.drop_index('ix_sweeps_running', table_name='sweeps')
    op.drop_index('ix_sweeps_tenant_created', table_name='sweeps')
    op.drop_table('sweeps')
