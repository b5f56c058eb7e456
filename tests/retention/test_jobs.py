"""Scheduled jobs: consent validity runs out and is written to the ledger."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from api.db import db
from api.services import current
from privacy.context import utcnow
from retention.jobs import JOBS, expire_consents, purge_confirmations, purge_idempotency_keys
from retention.scheduler import build_scheduler, run_job
from tests.conftest import SIGNUP, Mailbox, local_path


def test_consent_past_its_validity_is_denied_and_then_expired_in_the_ledger(
        app: Flask, client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    body = {**SIGNUP, "purposes": {"profiling": True, "loyalty_club": True}}
    sid = client.post("/v1/consents", json=body, headers=writer).json["subject_id"]
    later = utcnow() + dt.timedelta(days=731)  # profiling consent is valid 730 days
    with app.app_context():
        assert expire_consents(current(), utcnow()) == 0
        assert expire_consents(current(), later) == 1
        assert expire_consents(current(), later) == 0  # idempotent
    state = client.get(f"/v1/subjects/{sid}/consents", headers=reader).json["consents"]
    assert state["profiling"]["status"] == "expired"
    assert state["loyalty_club"]["status"] == "granted"  # a contract does not lapse
    events = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert [e["event"] for e in events if e["purpose"] == "profiling"] == ["granted", "expired"]


def test_the_expiry_finds_lapsed_consents_through_the_index_of_granted_ones(
        app: Flask, client: FlaskClient, writer: dict[str, str], database: Any) -> None:
    if database.is_postgres:
        pytest.skip("PostgreSQL scans a table this small whatever its indexes; the plan is SQLite's")
    client.post("/v1/consents", json={**SIGNUP, "purposes": {"profiling": True}}, headers=writer)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM consent_states" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            assert expire_consents(current(), utcnow() + dt.timedelta(days=731)) == 1
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        statement, parameters = seen[0]
        plan = db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
        db.session.rollback()
    assert "ix_consent_states_granted" in " ".join(str(row[-1]) for row in plan)


def test_renewing_an_expired_consent_grants_it_again(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                     reader: dict[str, str]) -> None:
    body = {**SIGNUP, "purposes": {"profiling": True}}
    client.post("/v1/consents", json=body, headers=writer)
    with app.app_context():
        expire_consents(current(), utcnow() + dt.timedelta(days=800))
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.json["consents"]["profiling"]["status"] == "granted"


JSON = {"Accept": "application/json"}


def test_clean_up_jobs_remove_only_what_is_stale(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                 mailbox: Mailbox) -> None:
    client.post("/v1/consents", json=SIGNUP, headers={**writer, "Idempotency-Key": "k1"})
    link = local_path(mailbox.link(mailbox.to(SIGNUP["subject"]["email"])[0], "/confirm/"))
    assert client.post(link).status_code == 200
    with app.app_context():
        assert purge_idempotency_keys(current(), utcnow()) == 0
        assert purge_idempotency_keys(current(), utcnow() + dt.timedelta(hours=25)) == 1
        assert purge_confirmations(current(), utcnow()) == 0  # a used link stays refused until it expires
    assert client.post(link, headers=JSON).json["error"]["code"] == "token_used"
    with app.app_context():
        assert purge_confirmations(current(), utcnow() + dt.timedelta(days=15)) == 1


def test_the_scheduler_registers_every_job_once(app: Flask) -> None:
    scheduler = build_scheduler(app)
    ids = [j.id for j in scheduler.get_jobs()]
    assert sorted(ids) == sorted(JOBS) and len(set(ids)) == len(ids)
    assert {"deadline_watch", "expire_consents", "expire_requests", "forget_closed_requests", "forget_finished_tasks",
            "process_requests", "purge_confirmations", "purge_idempotency_keys", "purge_packages",
            "reconcile_connectors", "release_legal_holds", "retention_sweep", "send_mail"} <= set(JOBS)
    assert run_job(app, "expire_consents", expire_consents) == 0
