"""Alembic environment: the URL comes from the caller (app.core.migrate) or from kerasd's settings."""

from alembic import context

from app.core.database import make_engine
from app.core.settings import get_settings
from app.core.tables import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode rebuilds a SQLite table (copy, drop, rename); with foreign keys enforced, dropping a
            # table other rows point at fails. The pragma only takes effect outside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        # Batch mode lets later migrations alter columns on SQLite, which has no ALTER COLUMN. A transaction per
        # step, so that a step's locks (0006's on jobs) end with it, not with the whole upgrade.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
