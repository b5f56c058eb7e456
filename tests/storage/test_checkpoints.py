"""WAL checkpoints on SQLite: run by a thread of the writing process after its quota of
writes, outside the writer lock, and never by SQLite itself inside a commit before the
safety net."""
from __future__ import annotations

import copy
import os
import sqlite3
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.db import db
from privacy.storage import sqlite as privacy_db
from tests.conftest import PG_URL, SIGNUP

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="WAL checkpoints are SQLite's")


def _db_file(app: Flask) -> Path:
    with app.app_context():
        return Path(str(db.engine.url.database))


def _subjects_in_file(path: Path) -> int:
    """Subjects in the database file itself, the WAL left out: what checkpoints copied."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM subjects").fetchone()[0])
    finally:
        conn.close()


def _sign_up(client: FlaskClient, writer: dict[str, str], n: int) -> None:
    body = copy.deepcopy(SIGNUP)
    body["subject"]["email"] = f"anna.{n}@example.se"
    assert client.post("/v1/consents", json=body, headers=writer).status_code == 201


def test_the_wal_is_copied_into_the_database_after_a_process_quota_of_writes(
        app: Flask, client: FlaskClient, writer: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privacy_db, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(privacy_db.checkpoints, "_writes", 0)
    _sign_up(client, writer, 0)  # the first write of this process: its count starts now
    monkeypatch.setattr(privacy_db.checkpoints, "_writes", 0)
    path = _db_file(app)
    before = _subjects_in_file(path)
    _sign_up(client, writer, 1)
    _sign_up(client, writer, 2)
    assert privacy_db.checkpoints.wait()
    assert _subjects_in_file(path) == before, "checkpointed before the quota"
    _sign_up(client, writer, 3)
    assert privacy_db.checkpoints.wait()
    assert _subjects_in_file(path) == 4, "the third write did not checkpoint"


def test_sqlite_does_not_checkpoint_inside_a_commit_below_the_safety_net(
        app: Flask, client: FlaskClient, writer: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privacy_db.checkpoints, "_writes", 0)
    path = _db_file(app)
    _sign_up(client, writer, 0)
    before = _subjects_in_file(path)
    for n in range(1, 40):
        _sign_up(client, writer, n)
    assert privacy_db.checkpoints.wait()
    assert _subjects_in_file(path) == before
    assert os.path.getsize(f"{path}-wal") > 30 * 4096


def test_service_connections_cap_the_wal_file_and_its_autocheckpoint(app: Flask) -> None:
    with app.app_context():
        conn = db.engine.raw_connection()
        try:
            limit = conn.cursor().execute("PRAGMA journal_size_limit").fetchone()[0]
            pages = conn.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        finally:
            conn.close()
    assert limit == privacy_db.WAL_SIZE_LIMIT
    assert pages == privacy_db.AUTOCHECKPOINT_PAGES > 20 * privacy_db.CHECKPOINT_EVERY


def test_a_checkpoint_of_a_vanished_database_creates_no_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privacy_db, "CHECKPOINT_EVERY", 1)
    gone = tmp_path / "a dir with spaces & signs%" / "gone.db"
    gone.parent.mkdir()
    privacy_db.checkpoints.after_write(str(gone))
    assert privacy_db.checkpoints.wait()
    assert not gone.exists()
