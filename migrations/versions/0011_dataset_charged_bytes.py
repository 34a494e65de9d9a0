"""datasets.charged_bytes: what a dataset counts against its tenant's stored-bytes quota (its expanded size)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

A nullable column, added without a default: on PostgreSQL and SQLite alike that changes only the catalog (no
table rewrite, no rows read). Datasets stored before it keep NULL, which counts as their stored size.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'


def upgrade() -> None:
    op.add_column('datasets', sa.Column('charged_bytes', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('charged_bytes')
