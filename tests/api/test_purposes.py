"""Purposes through the API: listed with notice versions, changed by operators."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from privacy.policy.file import DEFAULT_POLICY_FILE
from tests.conftest import SIGNUP

NEW_TEXT = "We send offers by e-mail, at most once a week."


def _purposes(client: FlaskClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {p["code"]: p for p in client.get("/v1/purposes", headers=headers).json["purposes"]}


def _marketing_body(client: FlaskClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    current = _purposes(client, headers)["marketing_email"]
    body = {k: copy.deepcopy(current[k]) for k in ("name", "legal_basis", "fields", "double_opt_in",
                                                  "consent_valid_days", "gpc_opt_out", "recipients", "retention")}
    body["notice"] = {"version": current["notice"]["version"], "text": current["notice"]["text"]}
    body.update(changes)
    return body


def test_every_key_lists_purposes_with_their_current_notice(client: FlaskClient, reader: dict[str, str]) -> None:
    purposes = _purposes(client, reader)
    assert purposes["marketing_email"]["legal_basis"] == "consent"
    assert purposes["marketing_email"]["notice"]["version"] == "2026-11-01"
    assert len(purposes["marketing_email"]["notice"]["text_hash"]) == 64
    assert purposes["marketing_email"]["origin"] == "file"
    assert client.get("/v1/purposes").status_code == 401


def test_a_changed_notice_text_makes_a_new_notice_version(client: FlaskClient, admin: dict[str, str],
                                                          writer: dict[str, str], reader: dict[str, str]) -> None:
    old = _purposes(client, admin)["marketing_email"]["notice"]
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    body = _marketing_body(client, admin, notice={"version": "2026-11-01", "text": NEW_TEXT})
    r = client.put("/v1/purposes/marketing_email", json=body, headers=admin)
    assert r.status_code == 200, r.json
    new = r.json["notice"]
    assert new["version"] != old["version"] and new["text_hash"] != old["text_hash"]
    assert r.json["notice_versions"] == sorted([old["version"], new["version"]])
    assert r.json["origin"] == "api"
    # consent given earlier still names the version it was given to
    history = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    marketing = [e for e in history if e["purpose"] == "marketing_email"]
    assert marketing[0]["notice_version"] == old["version"] and marketing[0]["text_hash"] == old["text_hash"]
    # and consent to the new text records the new version and hash
    again = {**SIGNUP, "notice_version": new["version"], "purposes": {"marketing_email": True}}
    client.post("/v1/consents", json=again, headers=writer)
    history = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert history[-1]["notice_version"] == new["version"] and history[-1]["text_hash"] == new["text_hash"]


def test_the_same_notice_text_makes_no_new_version(client: FlaskClient, admin: dict[str, str]) -> None:
    r = client.put("/v1/purposes/marketing_email", json=_marketing_body(client, admin), headers=admin)
    assert r.json["notice_versions"] == ["2026-11-01"]


def test_an_operator_creates_a_new_purpose_and_it_is_audited(client: FlaskClient, admin: dict[str, str]) -> None:
    body = {"name": {"en": "Push notifications", "sv": "Pushnotiser"}, "legal_basis": "consent",
            "fields": ["email"], "notice": {"version": "v1", "text": "We send push notifications."}}
    r = client.put("/v1/purposes/push", json=body, headers=admin)
    assert r.status_code == 200
    assert "push" in _purposes(client, admin)
    entries = client.get("/v1/audit/log", headers=admin).json["entries"]
    assert [e["target"] for e in entries if e["action"] == "purpose.put"] == ["push"]


def test_only_admin_may_change_purposes(client: FlaskClient, officer: dict[str, str]) -> None:
    assert client.put("/v1/purposes/push", json={}, headers=officer).status_code == 403


def test_an_invalid_purpose_body_names_the_field(client: FlaskClient, admin: dict[str, str]) -> None:
    body = {"name": {"en": "X"}, "legal_basis": "consnet", "fields": ["email", "shoe_size"]}
    r = client.put("/v1/purposes/x", json=body, headers=admin)
    assert r.status_code == 422
    assert "legal_basis" in r.json["error"]["details"]
    r = client.put("/v1/purposes/x", json={**body, "legal_basis": "consent"}, headers=admin)
    assert r.status_code == 422 and "fields[1]" in r.json["error"]["details"]


def test_the_api_version_wins_until_the_file_entry_changes(tmp_path: Path, make_app: Callable[..., Flask],
                                                           auth: Callable[..., dict[str, str]]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text())
    app = make_app(POLICY_FILE=str(policy))
    client = app.test_client()
    admin = auth("admin")
    body = _marketing_body(client, admin, consent_valid_days=100)
    assert client.put("/v1/purposes/marketing_email", json=body, headers=admin).status_code == 200
    restarted = make_app(POLICY_FILE=str(policy)).test_client()
    assert _purposes(restarted, admin)["marketing_email"]["consent_valid_days"] == 100
    policy.write_text(policy.read_text().replace("consent_valid_days: 730\n    recipients: [Exempelbutiken AB, E-mail",
                                                 "consent_valid_days: 365\n    recipients: [Exempelbutiken AB, E-mail"))
    changed = make_app(POLICY_FILE=str(policy)).test_client()
    marketing = _purposes(changed, admin)["marketing_email"]
    assert marketing["consent_valid_days"] == 365 and marketing["origin"] == "file"


def test_a_changed_purpose_is_seen_at_once_by_every_worker(make_app: Callable[..., Flask],
                                                           auth: Callable[..., dict[str, str]]) -> None:
    # Two applications on one database stand for two gunicorn workers: each keeps its own caches.
    first, second = make_app().test_client(), make_app().test_client()
    admin, writer = auth("admin"), auth("consent:write")
    before = _purposes(second, admin)["marketing_email"]
    assert second.post("/v1/consents", json=SIGNUP, headers=writer).json["consents"]["marketing_email"][
        "status"] == "pending"  # double opt-in, and the second worker's caches are now warm

    body = _marketing_body(first, admin, double_opt_in=False, notice={"version": "2026-12-01", "text": NEW_TEXT})
    assert first.put("/v1/purposes/marketing_email", json=body, headers=admin).status_code == 200

    for email, version in (("bo@example.se", before["notice"]["version"]), ("cia@example.se", "2026-12-01")):
        again = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": email}, "notice_version": version,
                 "purposes": {"marketing_email": True}}
        r = second.post("/v1/consents", json=again, headers=writer)
        assert r.status_code == 201, r.json
        assert r.json["consents"]["marketing_email"]["status"] == "granted"  # no double opt-in any more
    after = _purposes(second, admin)["marketing_email"]
    assert after["notice"]["version"] == "2026-12-01" != before["notice"]["version"]
    assert after["double_opt_in"] is False
