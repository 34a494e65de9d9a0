"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, sha256_column, time_column

revision = '0001'
down_revision = None


def upgrade() -> None:
    op.create_table('blobs',
    sha256_column('sha256'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    time_column('created_at'),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('models',
    id_column('id'),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('keras_config', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    time_column('created_at'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('blob_chunks',
    sha256_column('blob_sha256'),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('blob_sha256', 'seq')
    )
    op.create_table('datasets',
    id_column('id'),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sha256_column('blob_sha256'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('arrays', sa.JSON(), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datasets_blob_sha256'), ['blob_sha256'], unique=False)

    op.create_table('jobs',
    id_column('id'),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    id_column('model_id'),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    time_column('lease_expires_at', nullable=True),
    time_column('created_at'),
    time_column('started_at', nullable=True),
    time_column('finished_at', nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_status'), ['status'], unique=False)

    op.create_table('artifacts',
    id_column('job_id'),
    sa.Column('name', sa.String(length=100), nullable=False),
    sha256_column('blob_sha256'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], ),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'name')
    )
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifacts_blob_sha256'), ['blob_sha256'], unique=False)

    op.create_table('job_epochs',
    id_column('job_id'),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('logs', sa.JSON(), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'epoch')
    )


def downgrade() -> None:
    op.drop_table('job_epochs')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifacts_blob_sha256'))

    op.drop_table('artifacts')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_jobs_model_id'))

    op.drop_table('jobs')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datasets_blob_sha256'))

    op.drop_table('datasets')
    op.drop_table('blob_chunks')
    op.drop_table('models')
    op.drop_table('blobs')
