"""experiments: a job's name, notes, tags, params and metric summaries, indexed for the lists' filters and sorts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

jobs gains name, notes, tags, params (its own copies, for its answer) and sweep_id (null until sweeps exist);
job_tags, job_params and job_metrics hold tags, params and metric summaries as rows, with an index per list
question (a tenant's jobs with a tag; sorted by a param or by a metric's best or final value).

The jobs stored before this get their params from their stored requests and their metric summaries from their
recorded epochs (and an evaluate job's from its result), a batch of jobs at a time. On PostgreSQL that backfill
and the index builds run outside a transaction: each batch commits on its own (the rows of jobs it updates are
locked only while it runs, so workers renewing leases wait a moment, not the whole migration), and the indexes
are built CONCURRENTLY as in 0008. Every step may run again after an interruption: columns and tables are added
only if missing, rows only where absent, and an invalid index left by an interrupted build is rebuilt.

SQLite: columns are added with ALTER TABLE ADD COLUMN, never in batch mode, which would rebuild jobs without the
queue triggers of 0007.
"""
import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision = '0009'
down_revision = '0008'

COLUMNS = [sa.Column('name', sa.String(200)), sa.Column('notes', sa.Text()), sa.Column('tags', sa.JSON()),
           sa.Column('params', sa.JSON()), sa.Column('sweep_id', sa.String(32))]
IN_SWEEP = sa.text('sweep_id IS NOT NULL')
# name -> (table, columns, partial condition or None)
INDEXES = {
    'ix_jobs_tenant_name': ('jobs', ['tenant_id', 'name', 'id'], None),
    'ix_jobs_tenant_sweep_created': ('jobs', ['tenant_id', 'sweep_id', 'created_at', 'id'], IN_SWEEP),
    'ix_job_tags_tenant_tag': ('job_tags', ['tenant_id', 'tag', 'job_id'], None),
    'ix_job_params_number': ('job_params', ['tenant_id', 'name', 'number', 'job_id'], None),
    'ix_job_params_text': ('job_params', ['tenant_id', 'name', 'text', 'job_id'], None),
    'ix_job_metrics_best': ('job_metrics', ['tenant_id', 'name', 'best', 'job_id'], None),
    'ix_job_metrics_final': ('job_metrics', ['tenant_id', 'name', 'final', 'job_id'], None),
}
BATCH = 500


def _job_fk() -> sa.Column:
    return sa.Column('job_id', sa.String(32), sa.ForeignKey('jobs.id', ondelete='CASCADE'), primary_key=True)


TABLES = {
    'job_tags': lambda: [_job_fk(), sa.Column('tag', sa.String(64), primary_key=True),
                         sa.Column('tenant_id', sa.String(32), nullable=False)],
    'job_params': lambda: [_job_fk(), sa.Column('name', sa.String(200), primary_key=True),
                           sa.Column('tenant_id', sa.String(32), nullable=False),
                           sa.Column('number', sa.Float()), sa.Column('text', sa.String(200))],
    'job_metrics': lambda: [_job_fk(), sa.Column('name', sa.String(200), primary_key=True),
                            sa.Column('tenant_id', sa.String(32), nullable=False),
                            sa.Column('final', sa.Float()), sa.Column('best', sa.Float()),
                            sa.Column('best_epoch', sa.Integer()), sa.Column('last_epoch', sa.Integer())],
}


def _schema() -> None:
    inspector = sa.inspect(op.get_bind())
    present = {column['name'] for column in inspector.get_columns('jobs')}
    for column in COLUMNS:
        if column.name not in present:
            op.add_column('jobs', column.copy())
    for name, columns in TABLES.items():
        if not inspector.has_table(name):
            op.create_table(name, *columns())


def _decoded(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def _backfill(bind) -> None:
    """Params and metric summaries of the jobs that have none, BATCH jobs at a time in id order."""
    from app.core.run_metrics import evaluation, summarize
    from app.experiments.params import param_row, params_of

    insert = postgresql.insert if bind.dialect.name == 'postgresql' else sqlite.insert
    tables = sa.MetaData()
    params_table = sa.Table('job_params', tables, *TABLES['job_params']())
    metrics_table = sa.Table('job_metrics', tables, *TABLES['job_metrics']())
    jobs = sa.table('jobs', sa.column('id'), sa.column('params', sa.JSON()))
    set_params = sa.update(jobs).where(jobs.c.id == sa.bindparam('job_id')).values(params=sa.bindparam('new_params'))
    last = ''
    while True:
        batch = bind.execute(sa.text(
            "SELECT jobs.id, jobs.tenant_id, jobs.request, jobs.result, jobs.status, jobs.params, models.summary "
            "FROM jobs JOIN models ON models.id = jobs.model_id WHERE jobs.id > :last ORDER BY jobs.id LIMIT :n"),
            {'last': last, 'n': BATCH}).all()
        if not batch:
            return
        last = batch[-1].id
        epochs: dict[str, list] = {}
        for row in bind.execute(sa.text("SELECT job_id, epoch, logs FROM job_epochs WHERE job_id IN :ids")
                                .bindparams(sa.bindparam('ids', expanding=True)), {'ids': [job.id for job in batch]}):
            epochs.setdefault(row.job_id, []).append((row.epoch, _decoded(row.logs)))
        updates, param_rows, metric_rows = [], [], []
        for job in batch:
            request = _decoded(job.request) or {}
            if job.params is None:
                params = params_of(request, _decoded(job.summary))
                updates.append({'job_id': job.id, 'new_params': params})
                param_rows += [{'job_id': job.id, 'tenant_id': job.tenant_id, 'name': name,
                                'number': param_row(value)[0], 'text': param_row(value)[1]}
                               for name, value in params.items()]
            summaries = summarize(epochs.get(job.id, []))
            evaluated = (_decoded(job.result) or {}).get('evaluation')
            if job.status == 'succeeded' and isinstance(evaluated, dict) and isinstance(evaluated.get('metrics'), dict):
                summaries = {**evaluation(evaluated['metrics']), **summaries}
            metric_rows += [{'job_id': job.id, 'tenant_id': job.tenant_id, 'name': name, 'final': s.final,
                             'best': s.best, 'best_epoch': s.best_epoch, 'last_epoch': s.last_epoch}
                            for name, s in summaries.items()]
        for statement, rows in ((set_params, updates),
                                (insert(params_table).on_conflict_do_nothing(), param_rows),
                                (insert(metrics_table).on_conflict_do_nothing(), metric_rows)):
            if rows:
                bind.execute(statement, rows)


def _drop_if_invalid(name: str, table: str) -> None:
    invalid = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
        "WHERE pg_class.relname = :name AND NOT pg_index.indisvalid"), {"name": name}).first()
    if invalid:
        op.drop_index(name, table_name=table, postgresql_concurrently=True)


def upgrade() -> None:
    _schema()
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        _backfill(bind)
        for name, (table, columns, where) in INDEXES.items():
            op.create_index(name, table, columns, sqlite_where=where, if_not_exists=True)
        return
    with op.get_context().autocommit_block():
        # Outside a transaction each statement commits by itself: at most one batch's rows of jobs are locked
        # at a time.
        _backfill(bind)
        for name, (table, columns, where) in INDEXES.items():
            _drop_if_invalid(name, table)
            op.create_index(name, table, columns, postgresql_where=where, postgresql_concurrently=True,
                            if_not_exists=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            for name, (table, _columns, _where) in INDEXES.items():
                op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    else:
        for name, (table, _columns, _where) in INDEXES.items():
            op.drop_index(name, table_name=table, if_exists=True)
    for name in TABLES:
        op.drop_table(name)
    for column in COLUMNS:
        op.drop_column('jobs', column.name)
