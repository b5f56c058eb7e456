"""The consent ledger and audit log: append-only and hash-chained."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from privacy.db import db
from tests.conftest import SIGNUP


def _tamper(app: Flask, sql: str) -> None:
    """What an attacker with write access to the database could do, triggers and all."""
    with app.app_context():
        dialect = db.engine.dialect.name
        with db.engine.begin() as conn:
            if dialect == "sqlite":
                conn.execute(text("DROP TRIGGER consent_events_no_update"))
                conn.execute(text("DROP TRIGGER consent_events_no_delete"))
            else:
                conn.execute(text("ALTER TABLE consent_events DISABLE TRIGGER consent_events_append_only"))
            conn.execute(text(sql))
            if dialect != "sqlite":
                conn.execute(text("ALTER TABLE consent_events ENABLE TRIGGER consent_events_append_only"))


def _three_signups(client: FlaskClient, writer: dict[str, str]) -> None:
    for name in ("a", "b", "c"):
        body = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": f"{name}@example.se"}}
        assert client.post("/v1/consents", json=body, headers=writer).status_code == 201


def test_an_untouched_ledger_verifies(client: FlaskClient, writer: dict[str, str], admin: dict[str, str],
                                      runner: object) -> None:
    _three_signups(client, writer)
    r = client.get("/v1/audit/verify", headers=admin)
    assert r.json["ok"] is True
    assert {c["chain"]: c["entries"] for c in r.json["chains"]}["consent"] == 9
    result = runner.invoke(args=["audit", "verify"])  # type: ignore[attr-defined]
    assert result.exit_code == 0 and result.output.startswith("ok")


def test_a_changed_event_is_caught_at_that_entry(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                 admin: dict[str, str]) -> None:
    _three_signups(client, writer)
    _tamper(app, "UPDATE consent_events SET status = 'granted' WHERE seq = 6")
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["ok"] is False
    assert r["first_broken"] == {"chain": "consent", "seq": 6, "reason": "content does not match its hash"}
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert '"seq": 6' in result.output


def test_a_deleted_event_is_caught(app: Flask, client: FlaskClient, writer: dict[str, str],
                                   admin: dict[str, str]) -> None:
    _three_signups(client, writer)
    _tamper(app, "DELETE FROM consent_events WHERE seq = 4")
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["first_broken"]["seq"] == 4


def test_removing_the_newest_events_is_caught(app: Flask, client: FlaskClient, writer: dict[str, str],
                                              admin: dict[str, str]) -> None:
    _three_signups(client, writer)
    _tamper(app, "DELETE FROM consent_events WHERE seq > 7")
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["ok"] is False and r["first_broken"]["seq"] == 8


@pytest.mark.parametrize("sql", [
    "UPDATE consent_events SET status = 'granted'",
    "DELETE FROM consent_events",
    "UPDATE audit_log SET actor = 'nobody'",
    "DELETE FROM audit_log",
])
def test_the_database_refuses_to_change_ledger_rows(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                    sql: str) -> None:
    _three_signups(client, writer)
    with app.app_context(), pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(sql))
