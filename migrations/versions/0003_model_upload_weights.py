"""models keep the uploaded .keras/.h5 file of a whole-model upload

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import sha256_column

revision = '0003'
down_revision = '0002'


def upgrade() -> None:
    # batch mode so SQLite (which cannot add a foreign key in place) rebuilds the table; PostgreSQL alters it.
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sha256_column('weights_sha256', nullable=True))
        batch_op.add_column(sa.Column('weights_format', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_models_weights_sha256'), ['weights_sha256'], unique=False)
        batch_op.create_foreign_key('fk_models_weights_sha256_blobs', 'blobs', ['weights_sha256'], ['sha256'])


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_constraint('fk_models_weights_sha256_blobs', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_models_weights_sha256'))
        batch_op.drop_column('weights_format')
        batch_op.drop_column('weights_sha256')
