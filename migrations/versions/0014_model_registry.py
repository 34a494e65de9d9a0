"""the model registry: registered models, their immutable versions with their own artifact references, aliases,
exports

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-05

Five new tables, nothing existing changes: on PostgreSQL the indexes of empty new tables are built in the
transaction (there is nothing to read, so nothing waits).
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import id_column, sha256_column, time_column

revision = '0014'
down_revision = '0012'


def upgrade() -> None:
    op.create_table('registered_models',
    id_column('id'),
    id_column('tenant_id'),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_registered_models_tenant_name')
    )
    op.create_table('model_versions',
    id_column('id'),
    id_column('registered_model_id'),
    sa.Column('version', sa.Integer(), nullable=False),
    id_column('tenant_id'),
    sa.Column('description', sa.String(length=500), nullable=False),
    id_column('job_id'),
    id_column('model_id'),
    sa.Column('lineage', sa.JSON(), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
    sa.ForeignKeyConstraint(['model_id'], ['models.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('registered_model_id', 'version', name='uq_model_versions_number')
    )
    op.create_index('ix_model_versions_model_id', 'model_versions', ['model_id'])
    op.create_table('model_version_artifacts',
    id_column('version_id'),
    sa.Column('name', sa.String(length=100), nullable=False),
    sha256_column('blob_sha256'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256']),
    sa.PrimaryKeyConstraint('version_id', 'name')
    )
    op.create_index('ix_model_version_artifacts_blob_sha256', 'model_version_artifacts', ['blob_sha256'])
    op.create_table('model_aliases',
    id_column('registered_model_id'),
    sha256_column('alias'),
    id_column('version_id'),
    time_column('updated_at'),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('registered_model_id', 'alias')
    )
    op.create_index('ix_model_aliases_version_id', 'model_aliases', ['version_id'])
    op.create_table('model_version_exports',
    id_column('job_id'),
    id_column('version_id'),
    id_column('format'),
    time_column('created_at'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_index('ix_model_version_exports_version_id', 'model_version_exports', ['version_id'])


def downgrade() -> None:
    op.drop_index('ix_model_version_exports_version_id', table_name='model_version_exports')
    op.drop_table('model_version_exports')
    op.drop_index('ix_model_aliases_version_id', table_name='model_aliases')
    op.drop_table('model_aliases')
    op.drop_index('ix_model_version_artifacts_blob_sha256', table_name='model_version_artifacts')
    op.drop_table('model_version_artifacts')
    op.drop_index('ix_model_versions_model_id', table_name='model_versions')
    op.drop_table('model_versions')
    op.drop_table('registered_models')
