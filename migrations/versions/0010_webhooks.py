"""webhooks and their deliveries (the outbox that workers send from)

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-04

Two new tables, nothing existing changes: on PostgreSQL the indexes of empty new tables are built in the
transaction (there is nothing to read, so nothing waits).
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, time_column

revision = '0010'
down_revision = '0009'

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table('webhooks',
    id_column('id'),
    id_column('tenant_id'),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhooks_tenant_id', 'webhooks', ['tenant_id'])
    op.create_table('webhook_deliveries',
    id_column('id'),
    id_column('webhook_id'),
    id_column('event'),
    id_column('subject_id'),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.JSON(), nullable=False),
    time_column('next_attempt_at'),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    time_column('created_at'),
    time_column('finished_at', nullable=True),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_webhook_deliveries_hook_created', 'webhook_deliveries', ['webhook_id', 'created_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_hook_created', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhooks_tenant_id', table_name='webhooks')
    op.drop_table('webhooks')
