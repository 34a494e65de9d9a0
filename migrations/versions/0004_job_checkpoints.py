"""job checkpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, sha256_column, time_column

revision = '0004'
down_revision = '0003'


def upgrade() -> None:
    op.create_table('job_checkpoints',
    id_column('job_id'),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sha256_column('blob_sha256'),
    sa.Column('rng_state', sa.JSON(), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], ),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id')
    )
    with op.batch_alter_table('job_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_checkpoints_blob_sha256'), ['blob_sha256'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('job_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_checkpoints_blob_sha256'))

    op.drop_table('job_checkpoints')
