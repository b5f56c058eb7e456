"""Helpers of the retention tests: sign-ups, a sweep at a moved clock, what is stored."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from api.db import db
from api.services import current
from privacy.context import utcnow
from privacy.policy.file import DEFAULT_POLICY_FILE
from privacy.retention.sweep import RetentionService

NOTICE = "2026-11-01"


def sign_up(client: FlaskClient, writer: dict[str, str], email: str, purposes: dict[str, bool],
            **subject: str) -> str:
    body = {"subject": {"email": email, **subject}, "purposes": purposes, "notice_version": NOTICE,
            "source": {"form": "signup-web", "channel": "web"}}
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.status_code in (200, 201), r.json
    return str(r.json["subject_id"])


def sweep(app: Flask, days: float = 0, dry_run: bool = False, **kw: Any) -> dict[str, Any]:
    with app.app_context():
        return RetentionService(current()).run(utcnow() + dt.timedelta(days=days), dry_run, "test", **kw)


def rows(app: Flask, sql: str, **params: Any) -> list[Any]:
    with app.app_context():
        out = db.session.execute(text(sql), params).fetchall()
        db.session.rollback()
        return list(out)


def field_names(app: Flask, subject_id: str) -> set[str]:
    return {r.name for r in rows(app, "SELECT name FROM subject_fields WHERE subject_id = :s", s=subject_id)}


def exists(app: Flask, subject_id: str) -> bool:
    return bool(rows(app, "SELECT id FROM subjects WHERE id = :s", s=subject_id))


def audits(app: Flask, action: str = "retention.swept") -> list[dict[str, Any]]:
    return [json.loads(r.details) for r in rows(app, "SELECT details FROM audit_log WHERE action = :a ORDER BY seq",
                                                a=action)]


def policy_with(tmp_path: Path, *replacements: tuple[str, str]) -> str:
    """The example policy file with ``replacements`` (old, new) applied, written to ``tmp_path``."""
    text_ = DEFAULT_POLICY_FILE.read_text()
    for old, new in replacements:
        assert old in text_, old
        text_ = text_.replace(old, new)
    path = tmp_path / "policy.yaml"
    path.write_text(text_)
    return str(path)
