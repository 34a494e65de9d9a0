"""queue lanes: jobs.queue_ticket, queue_lanes and queue_blocks (the schema only; 0007 fills and keeps them)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

A lane is a tenant's queued jobs of one priority in one queue; the scheduler serves it in ticket order. The
column is added nullable without a default, which PostgreSQL does without rewriting the table: the lock it
takes lasts as long as the catalog change, and this step commits at once (migrations/env.py runs each step in
its own transaction).
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column

revision = '0006'
down_revision = '0005'


def upgrade() -> None:
    op.add_column('jobs', sa.Column('queue_ticket', sa.BigInteger(), nullable=True))
    op.create_table('queue_lanes',
    id_column('tenant_id'),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('next_ticket', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'queue', 'priority')
    )
    # Level first: each question reads one level (a lane's blocks before a ticket, the lanes' totals of a tenant,
    # of a queue, of everything), and finds that level's rows together in the key.
    op.create_table('queue_blocks',
    sa.Column('level', sa.Integer(), nullable=False),
    id_column('tenant_id'),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('block', sa.BigInteger(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('level', 'tenant_id', 'queue', 'priority', 'block')
    )


def downgrade() -> None:
    op.drop_table('queue_blocks')
    op.drop_table('queue_lanes')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('queue_ticket')
