"""No personal value in the database files, a dump, or the logs."""
from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.db import db
from tests.conftest import SIGNUP, Mailbox, local_path

KNOWN = {
    "email": "zlatan.unique.marker@example.se",
    "first_name": "Wilhelmina-Markørsdóttir",
    "last_name": "Quixotically-Unusual",
    "postal_code": "98765",
    "phone": "+46701234599",
    "rectified": "Rectified-Markörsson",
}
SIGNUP_KNOWN = {
    "subject": {"email": KNOWN["email"], "first_name": KNOWN["first_name"], "last_name": KNOWN["last_name"],
                "postal_code": KNOWN["postal_code"], "phone": KNOWN["phone"], "birth_date": "1961-07-13"},
    "purposes": {"loyalty_club": True, "marketing_email": True, "sms": True},
    "notice_version": "2026-11-01",
    "source": {"form": "signup-web", "channel": "web"},
}


def _needles() -> list[bytes]:
    out = []
    for value in KNOWN.values():
        for form in {value, value.lower(), value.upper()}:
            out.append(form.encode("utf-8"))
            out.append(form.encode("utf-16-le"))
    out.append(b"1961-07-13")
    return out


def _hits(blob: bytes) -> list[bytes]:
    return [n for n in _needles() if n in blob]


def _record(client: FlaskClient, writer: dict[str, str], officer: dict[str, str]) -> None:
    """A sign-up, then data-subject requests: an extension whose reason names the person, a
    rectification to a new value and an access package, all of which must be sealed."""
    r = client.post("/v1/consents", json=SIGNUP_KNOWN, headers=writer)
    assert r.status_code == 201, r.json
    app = client.application
    mailbox = Mailbox(app)
    for kind, extra in (("rectification", {"changes": {"last_name": KNOWN["rectified"]}}), ("access", {})):
        opened = client.post("/v1/requests", json={"type": kind, "email": KNOWN["email"], **extra})
        assert opened.status_code == 202, opened.json
        request_id = opened.json["id"]
        extended = client.post(f"/v1/requests/{request_id}/extend", headers=officer,
                               json={"days": 5, "reason": f"waiting for {KNOWN['first_name']}'s receipts"})
        assert extended.status_code == 200, extended.json
        link = next(mailbox.link(m, "/verify?") for m in reversed(mailbox.to(KNOWN["email"]))
                    if request_id in mailbox.body(m) and "/verify?" in mailbox.body(m))
        assert client.post(local_path(link)).status_code == 200
    found = client.get("/v1/subjects", query_string={"email": KNOWN["email"]}, headers=officer).json
    assert found["fields"]["first_name"] == KNOWN["first_name"]  # stored, readable through the API only
    assert found["fields"]["last_name"] == KNOWN["rectified"]
    assert list((Path(app.instance_path) / "exports").glob("*.sealed"))


def _exports(client: FlaskClient) -> bytes:
    return b"".join(p.read_bytes() for p in (Path(client.application.instance_path) / "exports").glob("*"))


def test_sqlite_file_and_wal_hold_no_personal_value(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                    officer: dict[str, str]) -> None:
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite file scan; the PostgreSQL run scans pg_dump instead")
    _record(client, writer, officer)
    path = Path(url.database or "")
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    assert Path(f"{path}-wal") in files  # the WAL is there and is scanned too
    blob = b"".join(p.read_bytes() for p in files)
    assert _hits(blob) == []
    assert _hits(_exports(client)) == []  # access packages at rest


def test_pg_dump_holds_no_personal_value(app: Flask, client: FlaskClient, writer: dict[str, str],
                                         officer: dict[str, str]) -> None:
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs PostgreSQL (PRIVACY_TEST_DATABASE_URL)")
    _record(client, writer, officer)
    pg_dump = Path(os.environ.get("PRIVACY_TEST_PG_BIN", "/usr/bin")) / "pg_dump"
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    dump = subprocess.run(
        [str(pg_dump), "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "",
         "--data-only", url.database or ""], env=env, capture_output=True, check=True).stdout
    assert b"COPY public.subject_fields" in dump
    assert _hits(dump) == []
    assert _hits(_exports(client)) == []


def test_logs_carry_no_personal_value(client: FlaskClient, writer: dict[str, str], officer: dict[str, str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _record(client, writer, officer)
    client.post("/v1/consents", json={**SIGNUP_KNOWN, "purposes": {"sms": False}}, headers=writer)
    text = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert "consent recorded" in text  # the sign-up did log, without the person in it
    assert _hits(text.encode()) == []


def test_signup_example_values_stay_out_of_the_logs_too(client: FlaskClient, writer: dict[str, str],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/v1/consents", json=SIGNUP, headers=writer)
    assert "anna" not in caplog.text.lower()


def test_request_lines_in_logs_lose_their_query_strings() -> None:
    from api.logs import RedactQueryStrings

    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '%s - - [%s] "%s" %s %s',
                               ("127.0.0.1", "now", "GET /v1/subjects?email=anna%40example.se HTTP/1.1", "200", "-"),
                               None)
    RedactQueryStrings().filter(record)
    assert "anna" not in record.getMessage()
    assert "GET /v1/subjects?… HTTP/1.1" in record.getMessage()


def test_a_double_opt_in_token_in_a_request_line_is_not_logged() -> None:
    from api.logs import RedactQueryStrings

    token = "Zx9-secret-token_value"
    for line in (f'127.0.0.1 - "POST /v1/consents/confirm/{token} HTTP/1.1" 200 -',
                 f'127.0.0.1 [now] "POST /v1/consents/confirm/{token}?utm=x HTTP/1.1" 200 12 3ms'):
        record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, line, None, None)
        RedactQueryStrings().filter(record)
        assert token not in record.getMessage()
        assert "/v1/consents/confirm/…" in record.getMessage()


def test_a_rate_limit_breach_is_logged_without_the_client_ip(make_app: Any,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flask-limiter")
    client = make_app(REQUEST_LIMIT_IP="1 per minute").test_client()
    for n in range(2):
        client.post("/v1/requests", json={"type": "access", "email": f"p{n}@example.se"},
                    environ_base={"REMOTE_ADDR": "198.51.100.23"})
    assert "exceeded" in caplog.text
    assert "198.51.100.23" not in caplog.text
