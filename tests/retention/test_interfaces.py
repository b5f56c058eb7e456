"""The sweep's interfaces: the CLI, the API's scopes, the nightly job."""
from __future__ import annotations

import datetime as dt
import json

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from api.services import current
from privacy.context import utcnow
from retention.jobs import JOBS, retention_sweep
from tests.retention.sweeping import audits, exists, sign_up

LATER = (utcnow() + dt.timedelta(days=31)).strftime("%Y-%m-%d")


def withdrawn_sms(client: FlaskClient, writer: dict[str, str]) -> str:
    sid = sign_up(client, writer, "anna@example.se", {"sms": True}, phone="+46701234567")
    sign_up(client, writer, "anna@example.se", {"sms": False})
    return sid


def test_cli_dry_run_lists_what_would_go_and_the_real_run_deletes(
        app: Flask, client: FlaskClient, writer: dict[str, str], runner: FlaskCliRunner) -> None:
    sid = withdrawn_sms(client, writer)
    dry = runner.invoke(args=["retention", "run", "--dry-run", "--as-of", LATER])
    assert dry.exit_code == 0, dry.output
    assert f"would delete {sid} (sms): phone" in dry.output
    assert exists(app, sid)
    real = runner.invoke(args=["retention", "run", "--as-of", LATER])
    assert real.exit_code == 0, real.output
    summary = json.loads(real.output.strip().splitlines()[-1])
    assert summary["subjects"] == {"deleted": 1, "anonymised": 0} and summary["dry_run"] is False
    assert not exists(app, sid)
    assert audits(app)[0]["run"] == summary["run"]
    bad = runner.invoke(args=["retention", "run", "--as-of", "not-a-date"])
    assert bad.exit_code == 2


def test_an_officer_may_only_dry_run(app: Flask, client: FlaskClient, writer: dict[str, str],
                                     officer: dict[str, str]) -> None:
    sid = withdrawn_sms(client, writer)
    as_of = (utcnow() + dt.timedelta(days=31)).isoformat()
    r = client.post("/v1/retention/runs", json={"as_of": as_of}, headers=officer)
    assert r.status_code == 200, r.json
    assert r.json["dry_run"] is True and r.json["would_go"][0]["subject_id"] == sid
    refused = client.post("/v1/retention/runs", json={"dry_run": False, "as_of": as_of}, headers=officer)
    assert refused.status_code == 403 and "dry_run" in refused.json["error"]["details"]
    assert exists(app, sid)


def test_a_dry_run_takes_a_date_as_the_start_of_that_day_utc(
        client: FlaskClient, writer: dict[str, str], officer: dict[str, str]) -> None:
    sid = withdrawn_sms(client, writer)
    later = (utcnow() + dt.timedelta(days=32)).date().isoformat()
    r = client.post("/v1/retention/runs", json={"dry_run": True, "as_of": later}, headers=officer)
    assert r.status_code == 200, r.json
    assert r.json["as_of"] == f"{later}T00:00:00Z" and r.json["would_go"][0]["subject_id"] == sid
    too_soon = (utcnow() + dt.timedelta(days=29)).date().isoformat()
    assert client.post("/v1/retention/runs", json={"as_of": too_soon}, headers=officer).json["would_go"] == []


def test_an_admin_runs_real_by_default_and_runs_are_listed(
        app: Flask, client: FlaskClient, writer: dict[str, str], officer: dict[str, str],
        admin: dict[str, str]) -> None:
    sid = withdrawn_sms(client, writer)
    as_of = (utcnow() + dt.timedelta(days=31)).isoformat()
    client.post("/v1/retention/runs", json={"as_of": as_of}, headers=officer)
    r = client.post("/v1/retention/runs", json={"as_of": as_of}, headers=admin)
    assert r.status_code == 200 and r.json["dry_run"] is False and r.json["subjects"]["deleted"] == 1
    assert not exists(app, sid)
    runs = client.get("/v1/retention/runs", headers=officer).json["runs"]
    assert [run["dry_run"] for run in runs] == [False, True]  # newest first
    assert runs[0]["status"] == "done" and runs[0]["summary"]["subjects"]["deleted"] == 1
    assert client.get("/v1/retention/runs", headers=writer).status_code == 403


def test_the_nightly_job_sweeps(app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    sid = withdrawn_sms(client, writer)
    assert JOBS["retention_sweep"] == (retention_sweep, dt.timedelta(hours=24))
    with app.app_context():
        assert retention_sweep(current(), utcnow()) == 0
        assert retention_sweep(current(), utcnow() + dt.timedelta(days=31)) == 1
    assert not exists(app, sid)
