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

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registered_models',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_registered_models_tenant_name')
    )
    op.create_table('model_versions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('registered_model_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('lineage', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
    sa.ForeignKeyConstraint(['model_id'], ['models.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('registered_model_id', 'version', name='uq_model_versions_number')
    )
    op.create_index('ix_model_versions_model_id', 'model_versions', ['model_id'])
    op.create_table('model_version_artifacts',
    sa.Column('version_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256']),
    sa.PrimaryKeyConstraint('version_id', 'name')
    )
    op.create_index('ix_model_version_artifacts_blob_sha256', 'model_version_artifacts', ['blob_sha256'])
    op.create_table('model_aliases',
    sa.Column('registered_model_id', sa.String(length=32), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.String(length=32), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('registered_model_id', 'alias')
    )
    op.create_index('ix_model_aliases_version_id', 'model_aliases', ['version_id'])
    op.create_table('model_version_exports',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('version_id', sa.String(length=32), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
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
