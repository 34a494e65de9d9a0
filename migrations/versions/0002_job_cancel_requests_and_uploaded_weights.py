"""job cancel requests and uploaded weights

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, sha256_column, time_column

revision = '0002'
down_revision = '0001'


def upgrade() -> None:
    op.create_table('weights_files',
    id_column('id'),
    sa.Column('name', sa.String(length=200), nullable=False),
    sha256_column('blob_sha256'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('weights_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_weights_files_blob_sha256'), ['blob_sha256'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(time_column('cancel_requested_at', nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested_at')

    with op.batch_alter_table('weights_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_weights_files_blob_sha256'))

    op.drop_table('weights_files')
