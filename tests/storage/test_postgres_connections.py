"""A pooled PostgreSQL connection that the server closed while it sat in the pool is
replaced when it is taken out, without a ping, and no request sees the closed one."""
from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from api.db import db
from privacy.storage.postgres import checked_at_checkout, connection_is_dead
from tests.conftest import PG_URL, SIGNUP

postgres_only = pytest.mark.skipif(not PG_URL, reason="a PostgreSQL server's connections")


def _terminate_pooled_backends(app: Flask) -> int:
    """End, from another connection, the server side of every connection in the app's pool."""
    with app.app_context():
        db.session.remove()
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        database = db.engine.url.database
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND state = 'idle'", (database,)).fetchall()
    return len(rows)


@pytest.mark.parametrize(("url", "checked"), [
    ("postgresql+psycopg://u:p@db.example:5432/privacy", True),
    ("postgresql+psycopg2://u:p@db.example:5432/privacy", False),  # SQLAlchemy's pre-ping
    ("sqlite:////tmp/privacy.db", False),
])
def test_only_psycopg_connections_are_checked_at_checkout(url: str, checked: bool) -> None:
    assert checked_at_checkout(url) is checked


@postgres_only
def test_a_live_idle_connection_is_kept_and_a_terminated_one_is_dead(app: Flask) -> None:
    with app.app_context():
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as idle, psycopg.connect(url, autocommit=True) as admin:
        assert not connection_is_dead(idle)
        admin.execute("SELECT pg_terminate_backend(%s)", (idle.info.backend_pid,))
        deadline = time.monotonic() + 5
        while not connection_is_dead(idle) and time.monotonic() < deadline:
            time.sleep(0.01)  # the server's closing message is on its way
        assert connection_is_dead(idle)


@postgres_only
def test_requests_after_the_server_closed_the_pooled_connections_all_succeed(
        app: Flask, client: FlaskClient, auth: Callable[..., dict[str, str]]) -> None:
    headers = auth("consent:write", "consent:read")
    first = client.post("/v1/consents", json=SIGNUP, headers=headers)
    assert first.status_code == 201
    with app.app_context():
        assert db.session.execute(text("SELECT 1")).scalar() == 1
    assert _terminate_pooled_backends(app) >= 1
    again = client.post("/v1/consents", json={**SIGNUP, "subject": {**SIGNUP["subject"], "email": "second@example.se"}},
                        headers=headers)
    assert again.status_code == 201, again.get_json()
    states = client.get(f"/v1/subjects/{first.get_json()['subject_id']}/consents", headers=headers)
    assert states.status_code == 200
