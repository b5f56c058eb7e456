"""The Alembic migrations build exactly the schema the models describe."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import inspect, text

from api import create_app
from api.db import db
from api.services import unit_of_work
from privacy.apikeys import create_key
from privacy.context import utcnow
from privacy.ledger import verification
from tests.conftest import MASTER_KEY, SIGNUP


def test_models_and_migrations_agree(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_database_is_at_the_newest_revision(app: Flask) -> None:
    from alembic.script import ScriptDirectory
    from flask_migrate import Migrate

    migrate: Migrate = app.extensions["migrate"]
    heads = ScriptDirectory(migrate.directory).get_heads()
    with app.app_context(), db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == tuple(heads)


def test_an_older_database_upgrades_with_its_data(tmp_path: Path, database: Any) -> None:
    if database.is_postgres:
        pytest.skip("the PostgreSQL run shares one migrated database; this walks SQLite from revision 0001")
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = {"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": url, "MASTER_KEY": MASTER_KEY}
    with create_app(config).app_context():
        upgrade(revision="0001")
        db.session.execute(text("INSERT INTO api_keys (id, name, prefix, token_hash, scopes, created_at) "
                                "VALUES ('k1', 'old', 'pk_old', 'h', 'admin', '2026-01-01 00:00:00.000000')"))
        db.session.commit()
        upgrade()
        assert inspect(db.engine).has_table("mail_outbox")
        assert db.session.execute(text("SELECT name FROM api_keys")).scalar_one() == "old"
        db.session.remove()
        db.engine.dispose()


def test_sign_ups_stored_before_the_compact_tables_survive_the_rebuild(tmp_path: Path, database: Any) -> None:
    if database.is_postgres:
        pytest.skip("the PostgreSQL run shares one migrated database; WITHOUT ROWID is SQLite's")
    from flask_migrate import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = {"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": url, "MASTER_KEY": MASTER_KEY}
    app = create_app(config)
    with app.app_context():
        upgrade()
        downgrade(revision="0005")
    with app.app_context(), unit_of_work() as session:
        _, token = create_key(session, "writer", ["consent:write", "consent:read"], "test", utcnow())
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/v1/consents", json=SIGNUP, headers=headers).status_code == 201
    subject_id = client.post("/v1/consents", json={**SIGNUP, "purposes": {"profiling": True}},
                             headers=headers).json["subject_id"]
    before = client.get(f"/v1/subjects/{subject_id}/history", headers=headers).json
    with app.app_context():
        upgrade()
        tables = {name: sql for name, sql in db.session.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"))}
        assert all(tables[t].rstrip().endswith("WITHOUT ROWID")
                   for t in ("subject_fields", "consent_states", "confirmations"))
        assert "seq INTEGER NOT NULL" in tables["consent_events"]
        assert verification(db.session())["ok"]
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(text("DELETE FROM consent_events"))
        db.session.rollback()
        fields = db.session.execute(text("SELECT count(*) FROM subject_fields")).scalar_one()
        db.session.remove()
    assert fields == 4
    assert client.get(f"/v1/subjects/{subject_id}/history", headers=headers).json == before
    states = client.get(f"/v1/subjects/{subject_id}/consents", headers=headers).json["consents"]
    assert states["profiling"]["status"] == "granted" and states["loyalty_club"]["status"] == "granted"
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
