"""The ``privacy`` command as an operator uses it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from tests.conftest import MASTER_KEY, SIGNUP


def test_keys_create_prints_the_key_alone_on_the_last_line(runner: FlaskCliRunner, client: FlaskClient) -> None:
    result = runner.invoke(args=["keys", "create", "--name", "signup-web", "--scopes", "consent:write"])
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("pk_") and " " not in token
    assert client.post("/v1/consents", json=SIGNUP, headers={"Authorization": f"Bearer {token}"}).status_code == 201


def test_keys_are_stored_only_as_a_hash(app: Flask, runner: FlaskCliRunner) -> None:
    from api.db import db
    from privacy.storage.models import ApiKey

    token = runner.invoke(args=["keys", "create", "--name", "x", "--scopes", "admin"]).stdout.strip().splitlines()[-1]
    with app.app_context():
        (key,) = db.session.query(ApiKey).all()
        assert token not in (key.token_hash, key.prefix) and len(key.token_hash) == 64


def test_unknown_scopes_are_refused(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["keys", "create", "--name", "x", "--scopes", "consent:wrte"])
    assert result.exit_code != 0
    assert "consent:wrte" in result.output


def test_a_revoked_key_stops_working(runner: FlaskCliRunner, client: FlaskClient) -> None:
    token = runner.invoke(args=["keys", "create", "--name", "temp", "--scopes", "consent:read"]
                          ).stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/purposes", headers=headers).status_code == 200
    listed = runner.invoke(args=["keys", "list"]).output
    assert "temp" in listed and token not in listed
    assert runner.invoke(args=["keys", "revoke", "temp"]).exit_code == 0
    assert client.get("/v1/purposes", headers=headers).status_code == 401


def test_demo_loads_members_and_prints_working_keys(runner: FlaskCliRunner, client: FlaskClient) -> None:
    result = runner.invoke(args=["demo", "--members", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    tokens = dict(line.split() for line in lines[1:5])
    samples = lines[5].removeprefix("Members to try: ").split(", ")
    check = {"purpose": "loyalty_club", "emails": [*samples, "nobody@example.se"]}
    r = client.post("/v1/consents/check", json=check, headers={"Authorization": f"Bearer {tokens['demo-marketing']}"})
    assert r.json["allowed"] == samples and r.json["denied"] == ["nobody@example.se"]
    officer = {"Authorization": f"Bearer {tokens['demo-officer']}"}
    queue = client.get("/v1/requests", headers=officer).json["requests"]
    assert sorted(q["type"] for q in queue) == ["access", "rectification"]
    again = runner.invoke(args=["demo", "--members", "5"])
    fresh = dict(line.split() for line in again.output.splitlines()[1:5])
    officer = {"Authorization": f"Bearer {fresh['demo-officer']}"}
    assert len(client.get("/v1/requests", headers=officer).json["requests"]) == 2  # a second run adds none


def test_the_console_script_migrates_an_empty_database(tmp_path: Path) -> None:
    env = {"PRIVACY_INSTANCE_DIR": str(tmp_path), "PRIVACY_MASTER_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin"}
    cli = [sys.executable, "-c", "from api.main import main; main()"]
    # Run from outside the repository (not from tests/, whose tests/api would shadow the api package).
    up = subprocess.run([*cli, "db", "upgrade"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    verify = subprocess.run([*cli, "audit", "verify"], env=env, capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stdout.startswith("ok")


def test_health_answers_503_while_the_database_is_away(tmp_path: Path) -> None:
    from api import create_app

    app = create_app({"INSTANCE_DIR": str(tmp_path), "MASTER_KEY": MASTER_KEY,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"})
    r = app.test_client().get("/healthz")
    assert r.status_code == 503 and r.json["error"]["code"] in ("unavailable", "not_ready")


@pytest.mark.parametrize("args", [["keys", "list"], ["audit", "verify"], ["reports", "retention", "--output", "r.csv"]])
def test_a_command_on_a_database_never_migrated_says_so_in_one_line(tmp_path: Path, args: list[str]) -> None:
    from click.testing import CliRunner

    from api.main import main

    env = {"PRIVACY_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "PRIVACY_INSTANCE_DIR": str(tmp_path),
           "PRIVACY_MASTER_KEY": MASTER_KEY}
    args = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1
    assert result.output == "Error: the database has no schema; run `privacy db upgrade`\n"
