"""The ledger anchor: an audit entry naming every consent head, written when one moved."""
from __future__ import annotations

import datetime as dt
import json

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from api.db import db
from privacy.context import utcnow
from privacy.storage.repositories.ledger import SHARDS
from retention.jobs import JOBS, ledger_anchor
from retention.scheduler import run_job
from retention.schedules import schedules
from tests.conftest import SIGNUP


def _anchor(app: Flask, at: dt.datetime) -> int | None:
    """The scheduler's run of the anchor at ``at`` (its tick claimed in job_runs)."""
    ctx = app.extensions["privacy"]
    ctx.clock = lambda: at
    try:
        return run_job(app, "ledger_anchor", ledger_anchor, schedules(JOBS, ctx.policy)["ledger_anchor"])
    finally:
        ctx.clock = utcnow


def _anchors(app: Flask) -> list[dict[str, list[object]]]:
    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text("SELECT details FROM audit_log WHERE action = 'ledger.anchored' ORDER BY seq"))
        return [json.loads(details)["consent"] for (details,) in rows]


def _sign_up(client: FlaskClient, writer: dict[str, str], email: str) -> None:
    body = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": email}}
    assert client.post("/v1/consents", json=body, headers=writer).status_code == 201


def test_the_anchor_runs_every_minute_by_default(app: Flask) -> None:
    assert schedules(JOBS, app.extensions["privacy"].policy)["ledger_anchor"].describe() == "every 1 min"


def test_the_anchor_names_every_head_and_is_written_only_when_one_moved(app: Flask, client: FlaskClient,
                                                                       writer: dict[str, str]) -> None:
    start = utcnow()
    _sign_up(client, writer, "a@example.se")
    assert _anchor(app, start) == 1
    assert _anchor(app, start + dt.timedelta(minutes=1)) == 0  # nothing moved
    _sign_up(client, writer, "b@example.se")
    assert _anchor(app, start + dt.timedelta(minutes=2)) == 1
    first, second = _anchors(app)
    assert set(second) == {"legacy", *(f"{k:02d}" for k in range(SHARDS))}
    with app.app_context(), db.engine.connect() as conn:
        heads = {name: [seq, hash_] for name, seq, hash_ in conn.execute(text(
            "SELECT name, seq, hash FROM chain_heads WHERE name LIKE 'consent%'"))}
    assert {("legacy" if n == "consent" else n.split("/")[1]): h for n, h in heads.items()} == second
    assert sum(first[k] != second[k] for k in second) == 1  # b's shard moved


def test_without_consent_heads_there_is_nothing_to_anchor(app: Flask) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM chain_heads"))
    assert _anchor(app, utcnow()) == 0
    assert _anchors(app) == []
