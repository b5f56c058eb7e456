"""The consent ledger and audit log: append-only and hash-chained."""
from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.db import db
from privacy.ledger import canonical
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


def reference_canonical(data: dict[str, object]) -> bytes | None:
    """The definition of the hashed bytes (the standard library's encoder), or None when
    the data cannot be written as UTF-8 at all (a lone surrogate)."""
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        return None


scalars = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True))
entries = st.dictionaries(st.text(), st.one_of(scalars, st.dictionaries(st.text(), scalars, max_size=4)), max_size=8)


@settings(max_examples=400, deadline=None)
@given(entries)
def test_hashed_bytes_are_the_standard_librarys_json_for_any_entry(data: dict[str, object]) -> None:
    expected = reference_canonical(data)
    if expected is None:
        with pytest.raises(UnicodeEncodeError):
            canonical(data)
    else:
        assert canonical(data) == expected


@pytest.mark.parametrize("value", [1e16, 2 ** 70, "\x00\x1f\x7f\u2028\"\\/å😀", float("nan"), True])
def test_values_the_two_encoders_write_differently_still_hash_the_same_bytes(value: object) -> None:
    data = {"seq": 1, "details": {"value": value}, "value": value}
    assert canonical(data) == reference_canonical(data)
