"""the trials of client sweeps that were asked for and never got a job, with why

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

One new table, nothing existing changes (empty: nothing waits on its primary key's index).
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, time_column

revision = '0015'
down_revision = '0014'


def upgrade() -> None:
    op.create_table('sweep_failed_asks',
    id_column('sweep_id'),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    time_column('failed_at'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'number')
    )


def downgrade() -> None:
    op.drop_table('sweep_failed_asks')
