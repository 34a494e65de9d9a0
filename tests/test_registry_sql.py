"""The registry's statements on both databases kerasd runs on: SQLite (the embedded default, `kerasd up`) and
PostgreSQL, each migrated to the newest schema: numbers taken in order, an alias made and moved by one upsert,
a model deleted with everything of it, and the blobs its versions held left to the collection."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from sqlalchemy.orm import sessionmaker


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request, tmp_path):
    from app.core.migrate import upgrade_to_head

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
        upgrade_to_head(url)
    else:
        url = request.getfixturevalue("database_url")
    from app.core.database import make_engine

    engine = make_engine(url)
    with sessionmaker(engine)() as opened:
        yield opened
        opened.rollback()
    engine.dispose()


def test_numbers_aliases_and_deletion_run_on_sqlite_and_postgresql(session):
    from app.core.repositories import blobs
    from app.core.sql import ask
    from app.core.tables import ModelSpec, Tenant
    from app.registry import repository

    tenant = Tenant(name=f"sql-{session.get_bind().dialect.name}-{id(session)}")
    session.add(tenant)
    session.flush()
    spec = ModelSpec(tenant_id=tenant.id, name="m", spec={}, keras_config={}, summary={})
    session.add(spec)
    sha = hashlib.sha256(f"weights {tenant.id}".encode()).hexdigest()
    blobs.insert_blob(session, sha256=sha, size_bytes=3, chunk_count=0)
    model = repository.insert_model(session, tenant_id=tenant.id, name="churn", description="", latest_version=0)
    weights = SimpleNamespace(name="weights.h5", blob_sha256=sha, size_bytes=3, media_type="application/x-hdf5")
    made = []
    for _ in range(3):
        number = repository.next_number(session, model_id=model.id)
        made.append(repository.insert_version(session, artifacts=[weights], registered_model_id=model.id,
                                              version=number, tenant_id=tenant.id, job_id="0" * 32,
                                              model_id=spec.id, lineage={"seed": number}))
    assert [version.version for version in made] == [1, 2, 3]
    assert ask(session, repository.versions_made_from(spec_id=spec.id)) == ["churn/1", "churn/2", "churn/3"]

    repository.set_alias(session, model_id=model.id, alias="champion", version_id=made[0].id)
    assert ask(session, repository.version_aliased(model_id=model.id, alias="champion")).version == 1
    repository.set_alias(session, model_id=model.id, alias="champion", version_id=made[2].id)
    [alias] = ask(session, repository.aliases_of(model_id=model.id))
    assert (alias.alias, alias.version) == ("champion", 3)
    assert ask(session, repository.aliases_of_tenant(tenant_id=tenant.id))[0].version == 3
    assert ask(session, repository.model_named(tenant_id=tenant.id, name="churn", lock=True)).latest_version == 3

    # The versions hold the blob: it is not collectable while they are there, and is once they are gone.
    assert sha not in {row[0] for row in ask(session, blobs.collectable(cutoff=_far_future(), limit=10_000))}
    assert repository.delete_alias(session, model_id=model.id, alias="champion")
    assert not repository.delete_alias(session, model_id=model.id, alias="champion")
    repository.delete_model(session, model_id=model.id)
    assert ask(session, repository.model_named(tenant_id=tenant.id, name="churn")) is None
    assert ask(session, repository.versions_made_from(spec_id=spec.id)) == []
    assert sha in {row[0] for row in ask(session, blobs.collectable(cutoff=_far_future(), limit=10_000))}


def _far_future():
    from datetime import timedelta

    from app.core.tables import utcnow

    return utcnow() + timedelta(days=1)
