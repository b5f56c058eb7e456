"""Data-subject requests end to end through HTTP: a customer opens, verifies from the mailed
link and gets the answer; an officer runs the queue (docs/api.md, data-subject requests)."""
from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.services import current
from privacy.context import utcnow
from retention.jobs import forget_closed_requests
from tests.conftest import SIGNUP, Mailbox, local_path

ANNA = "anna@example.se"


def sign_up(client: FlaskClient, writer: dict[str, str], email: str = ANNA, **changes: Any) -> str:
    body = json.loads(json.dumps(SIGNUP))
    body["subject"]["email"] = email
    body.update(changes)
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.status_code == 201, r.json
    return str(r.json["subject_id"])


def open_request(client: FlaskClient, kind: str, email: str = ANNA, **extra: Any) -> dict[str, Any]:
    r = client.post("/v1/requests", json={"type": kind, "email": email, **extra})
    assert r.status_code == 202, r.json
    return dict(r.json)


def verification_link(mailbox: Mailbox, request_id: str, email: str = ANNA) -> str:
    for msg in reversed(mailbox.to(email)):
        if request_id in mailbox.body(msg) and "/verify?" in mailbox.body(msg):
            return local_path(mailbox.link(msg, "/verify?"))
    raise AssertionError("no verification mail for this request")


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def verify(client: FlaskClient, mailbox: Mailbox, request_id: str, email: str = ANNA) -> dict[str, Any]:
    link = verification_link(mailbox, request_id, email)
    r = client.post(f"/v1/requests/{request_id}/verify", json={"token": token_of(link)})
    assert r.status_code == 200, r.json
    return dict(r.json)


def last_mail_text(mailbox: Mailbox, email: str = ANNA) -> str:
    return mailbox.body(mailbox.to(email)[-1])


# --- intake -------------------------------------------------------------------------

def test_a_request_is_accepted_with_a_due_date_one_calendar_month_later(client: FlaskClient) -> None:
    body = open_request(client, "access")
    assert body["status"] == "pending_verification"
    assert set(body) == {"id", "status", "due_at"}
    due = dt.datetime.fromisoformat(body["due_at"].replace("Z", "+00:00"))
    assert dt.timedelta(days=27) < due - utcnow() < dt.timedelta(days=32)


def test_known_and_unknown_addresses_get_the_same_answer_shape(client: FlaskClient, writer: dict[str, str]) -> None:
    sign_up(client, writer)
    known = client.post("/v1/requests", json={"type": "access", "email": ANNA})
    unknown = client.post("/v1/requests", json={"type": "access", "email": "nobody@example.se"})
    assert known.status_code == unknown.status_code == 202
    assert set(known.json) == set(unknown.json)
    assert known.json["status"] == unknown.json["status"] == "pending_verification"
    assert len(known.data) == len(unknown.data)


def test_both_known_and_unknown_addresses_get_a_verification_mail(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    sign_up(client, writer)
    a = open_request(client, "access")
    b = open_request(client, "access", email="nobody@example.se")
    assert verification_link(mailbox, a["id"])
    assert verification_link(mailbox, b["id"], "nobody@example.se")


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "delete", "email": ANNA}, "type"),
    ({"type": "access"}, "email"),
    ({"type": "access", "email": "not an address"}, "email"),
    ({"type": "access", "email": ANNA, "language": "de"}, "language"),
    ({"type": "access", "email": ANNA, "changes": {"first_name": "A"}}, "changes"),
    ({"type": "rectification", "email": ANNA}, "changes"),
    ({"type": "rectification", "email": ANNA, "changes": {"shoe_size": "42"}}, "changes.shoe_size"),
    ({"type": "rectification", "email": ANNA, "changes": {"birth_date": "1990-02-30"}}, "changes.birth_date"),
    ({"type": "objection", "email": ANNA}, "purposes"),
    ({"type": "objection", "email": ANNA, "purposes": ["telepathy"]}, "purposes.0"),
    ({"type": "access", "email": ANNA, "extra": 1}, "extra"),
])
def test_a_bad_request_body_is_a_4xx_naming_the_field(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/v1/requests", json=body)
    assert 400 <= r.status_code < 500
    assert field in r.json["error"]["details"], r.json


# --- verification -------------------------------------------------------------------

def test_the_link_page_verifies_nothing_until_its_button_is_pressed(
        client: FlaskClient, officer: dict[str, str], mailbox: Mailbox) -> None:
    req = open_request(client, "access")
    link = verification_link(mailbox, req["id"])
    page = client.get(link)
    assert page.status_code == 200 and b"<form" in page.data
    assert client.get(f"/v1/requests/{req['id']}", headers=officer).json["status"] == "pending_verification"
    pressed = client.post(link)
    assert pressed.status_code == 200 and b"confirmed" in pressed.data
    assert client.get(f"/v1/requests/{req['id']}", headers=officer).json["status"] == "completed"


def test_a_verification_token_works_once(client: FlaskClient, mailbox: Mailbox) -> None:
    req = open_request(client, "restriction")
    token = token_of(verification_link(mailbox, req["id"]))
    assert client.post(f"/v1/requests/{req['id']}/verify", json={"token": token}).status_code == 200
    again = client.post(f"/v1/requests/{req['id']}/verify", json={"token": token})
    assert again.status_code == 409
    assert again.json["error"]["code"] == "token_used"


def test_a_wrong_token_is_refused_and_changes_nothing(
        client: FlaskClient, officer: dict[str, str], mailbox: Mailbox) -> None:
    req = open_request(client, "erasure")
    r = client.post(f"/v1/requests/{req['id']}/verify", json={"token": "x" * 43})
    assert r.status_code == 404
    assert "token" in r.json["error"]["details"]
    assert client.get(f"/v1/requests/{req['id']}", headers=officer).json["status"] == "pending_verification"


def test_a_token_of_another_request_is_refused(client: FlaskClient, mailbox: Mailbox) -> None:
    a = open_request(client, "access")
    b = open_request(client, "erasure")
    token_a = token_of(verification_link(mailbox, a["id"]))
    assert client.post(f"/v1/requests/{b['id']}/verify", json={"token": token_a}).status_code == 404


def test_an_expired_token_is_refused(app: Flask, client: FlaskClient, mailbox: Mailbox,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    req = open_request(client, "access")
    token = token_of(verification_link(mailbox, req["id"]))
    later = utcnow() + dt.timedelta(days=7, minutes=1)
    monkeypatch.setattr("api.requests.routes.now", lambda: later)
    r = client.post(f"/v1/requests/{req['id']}/verify", json={"token": token})
    assert r.status_code == 410
    assert r.json["error"]["code"] == "token_expired"


def test_unverified_requests_expire(app: Flask, client: FlaskClient, officer: dict[str, str]) -> None:
    from retention.jobs import expire_requests

    req = open_request(client, "access")
    with app.app_context():
        assert expire_requests(current(), utcnow() + dt.timedelta(days=6)) == 0
        assert expire_requests(current(), utcnow() + dt.timedelta(days=8)) == 1
    assert client.get(f"/v1/requests/{req['id']}", headers=officer).json["status"] == "expired"


def test_a_closed_requests_details_are_destroyed_after_90_days(
        app: Flask, client: FlaskClient, officer: dict[str, str], mailbox: Mailbox) -> None:
    from api.db import db
    from privacy.storage.models import DataRequest
    from retention.jobs import forget_closed_requests

    req = open_request(client, "access", email="nobody@example.se")
    verify(client, mailbox, req["id"], "nobody@example.se")
    mailbox.deliver()
    with app.app_context():
        assert forget_closed_requests(current(), utcnow() + dt.timedelta(days=89)) == 0
        assert forget_closed_requests(current(), utcnow() + dt.timedelta(days=91)) == 1
        row = db.session.get(DataRequest, req["id"])
        assert row is not None and row.wrapped_key is None and row.sealed is None
    view = client.get(f"/v1/requests/{req['id']}", headers=officer).json
    assert view["status"] == "completed"
    assert view["history"][-1]["action"] == "request.details_destroyed"


def test_every_transition_is_in_the_history_and_the_audit_log(
        client: FlaskClient, writer: dict[str, str], officer: dict[str, str], admin: dict[str, str],
        mailbox: Mailbox) -> None:
    sign_up(client, writer)
    req = open_request(client, "restriction")
    verify(client, mailbox, req["id"])
    view = client.get(f"/v1/requests/{req['id']}", headers=officer).json
    actions = [h["action"] for h in view["history"]]
    assert actions[0] == "request.received"
    for step in ("request.verified", "request.in_progress", "request.task", "request.completed"):
        assert step in actions
    assert actions.index("request.verified") < actions.index("request.in_progress") < actions.index(
        "request.completed")
    [local] = view["systems"]
    assert {k: local[k] for k in ("name", "status", "attempts", "last_error", "outcome", "operation")} == {
        "name": "privacy-service", "status": "succeeded", "attempts": 1, "last_error": None, "outcome": "done",
        "operation": "restriction"}
    assert client.get("/v1/audit/verify", headers=admin).json["ok"] is True


# --- access and portability ----------------------------------------------------------

def download(client: FlaskClient, mailbox: Mailbox, email: str = ANNA) -> tuple[str, bytes]:
    link = local_path(mailbox.link(mailbox.to(email)[-1], "/download?"))
    r = client.post(link)
    return link, r.data if r.status_code == 200 else b""


def test_access_package_holds_the_subjects_data_consents_and_history(
        client: FlaskClient, writer: dict[str, str], officer: dict[str, str], mailbox: Mailbox) -> None:
    subject_id = sign_up(client, writer)
    req = open_request(client, "access", language="sv")
    assert verify(client, mailbox, req["id"])["status"] == "completed"
    _, data = download(client, mailbox)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert {"data.json", "index.html", "subject.csv", "consents.csv", "consent_history.csv"} <= names
        doc = json.loads(zf.read("data.json"))
        page = zf.read("index.html").decode()
    fields = {f["name"]: f["value"] for f in doc["subject"]["fields"]}
    assert fields["email"] == ANNA and fields["first_name"] == "Anna"
    assert doc["subject"]["subject_id"] == subject_id
    assert {c["purpose"] for c in doc["consents"]} == {"loyalty_club", "marketing_email", "profiling"}
    assert doc["consent_history"] and all("notice_version" in e for e in doc["consent_history"])
    assert {p["code"]: p["legal_basis"] for p in doc["purposes"]}["loyalty_club"] == "contract"
    assert doc["requests"][0]["id"] == req["id"]
    assert "systems" in doc
    assert 'lang="sv"' in page and "Anna" in page
    officer_zip = client.get(f"/v1/requests/{req['id']}/package", headers=officer)
    assert officer_zip.status_code == 200 and officer_zip.mimetype == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(officer_zip.data)).namelist()


def test_the_download_link_works_three_times_then_stops(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    sign_up(client, writer)
    req = open_request(client, "access")
    verify(client, mailbox, req["id"])
    link = local_path(mailbox.link(mailbox.to(ANNA)[-1], "/download?"))
    assert client.get(link).status_code == 200  # the page downloads nothing
    for _ in range(3):
        assert client.post(link).status_code == 200
    fourth = client.post(link, headers={"Accept": "application/json"})
    assert fourth.status_code == 409


def test_a_package_expires_after_seven_days_and_its_file_is_deleted(
        app: Flask, client: FlaskClient, writer: dict[str, str], officer: dict[str, str], mailbox: Mailbox) -> None:
    from retention.jobs import purge_packages

    sign_up(client, writer)
    req = open_request(client, "access")
    verify(client, mailbox, req["id"])
    exports = list((app.instance_path and __import__("pathlib").Path(app.instance_path) / "exports").glob("*"))
    assert len(exports) == 1
    assert ANNA.encode() not in exports[0].read_bytes()  # encrypted at rest
    with app.app_context():
        assert purge_packages(current(), utcnow() + dt.timedelta(days=7, minutes=1)) == 1
    assert not exports[0].exists()
    assert client.get(f"/v1/requests/{req['id']}/package", headers=officer).status_code == 410


def test_portability_holds_only_data_given_under_consent_or_contract(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    sign_up(client, writer)
    req = open_request(client, "portability")
    verify(client, mailbox, req["id"])
    _, data = download(client, mailbox)
    doc = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("data.json"))
    assert doc["kind"] == "portability"
    assert {p["legal_basis"] for p in doc["purposes"]} <= {"consent", "contract"}
    assert doc["requests"] == []


def test_an_unknown_address_is_told_no_data_is_held(client: FlaskClient, mailbox: Mailbox) -> None:
    req = open_request(client, "access", email="nobody@example.se")
    assert verify(client, mailbox, req["id"], "nobody@example.se")["status"] == "completed"
    assert "no personal data" in last_mail_text(mailbox, "nobody@example.se")


# --- erasure ------------------------------------------------------------------------

def test_erasure_without_a_hold_removes_everything_and_suppresses_the_address(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str], officer: dict[str, str],
        mailbox: Mailbox) -> None:
    body = {"subject": {"email": ANNA, "first_name": "Anna"}, "purposes": {"marketing_email": True},
            "notice_version": "2026-11-01", "source": {"form": "f", "channel": "web"}}
    subject_id = client.post("/v1/consents", json=body, headers=writer).json["subject_id"]
    req = open_request(client, "erasure")
    verify(client, mailbox, req["id"])
    assert client.get(f"/v1/subjects?email={ANNA}", headers=officer).status_code == 404
    assert client.get(f"/v1/subjects/{subject_id}/consents", headers=reader).status_code == 404
    history = client.get(f"/v1/subjects/{subject_id}/consents/history", headers=reader).json
    assert history["events"][-1]["event"] == "withdrawn"  # the ledger keeps its pseudonymous proof
    check = client.post("/v1/consents/check", json={"purpose": "marketing_email", "emails": [ANNA]}, headers=reader)
    assert check.json["denied"] == [ANNA]
    again = client.post("/v1/consents", json=body, headers=writer)
    assert again.status_code == 409 and again.json["error"]["code"] == "subject_erased"
    assert "erased" in last_mail_text(mailbox)


def test_erasure_makes_an_earlier_access_package_unreadable_and_deletes_it(
        app: Flask, client: FlaskClient, writer: dict[str, str], officer: dict[str, str], mailbox: Mailbox) -> None:
    from pathlib import Path

    from retention.jobs import purge_packages

    sign_up(client, writer)
    access = open_request(client, "access")
    verify(client, mailbox, access["id"])
    verify(client, mailbox, open_request(client, "erasure")["id"])
    assert client.get(f"/v1/requests/{access['id']}/package", headers=officer).status_code == 410
    with app.app_context():
        assert purge_packages(current(), utcnow()) == 1
    assert list((Path(app.instance_path) / "exports").glob("*.sealed")) == []


def test_a_local_fault_leaves_the_request_in_progress_for_the_scheduler(
        app: Flask, client: FlaskClient, writer: dict[str, str], officer: dict[str, str], mailbox: Mailbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from retention.jobs import process_requests

    sign_up(client, writer)
    req = open_request(client, "restriction")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr("privacy.requests.fulfilment.restrict", broken)
    assert verify(client, mailbox, req["id"])["status"] == "in_progress"
    view = client.get(f"/v1/requests/{req['id']}", headers=officer).json
    assert view["systems"][0]["status"] == "pending" and "OSError" in view["systems"][0]["last_error"]
    monkeypatch.undo()
    with app.app_context():
        assert process_requests(current(), utcnow()) == 1
    assert client.get(f"/v1/requests/{req['id']}", headers=officer).json["status"] == "completed"


def test_erasure_keeps_fields_under_a_legal_hold_sealed_until_it_ends(
        app: Flask, client: FlaskClient, writer: dict[str, str], admin: dict[str, str], mailbox: Mailbox) -> None:
    from sqlalchemy import select

    from api.db import db
    from privacy.storage.models import HeldField, SubjectField

    subject_id = sign_up(client, writer)  # loyalty club: a contract, so bookkeeping applies
    req = open_request(client, "erasure")
    verify(client, mailbox, req["id"])
    with app.app_context():
        held = {h.name: h for h in db.session.scalars(select(HeldField).where(HeldField.subject_id == subject_id))}
        assert set(held) == {"first_name"}
        assert held["first_name"].hold == "bookkeeping"
        assert held["first_name"].until > utcnow() + dt.timedelta(days=2500)
        assert b"Anna" not in held["first_name"].ciphertext
        assert db.session.scalars(select(SubjectField).where(SubjectField.subject_id == subject_id)).all() == []
        from api.services import current

        h = held["first_name"]
        assert current().crypto.open_held(db.session, h.key_name, h.until, subject_id, "first_name",
                                          h.ciphertext) == "Anna"
    assert "keep: First name." in last_mail_text(mailbox)  # as the policy labels it
    entries = client.get("/v1/audit/log", headers=admin).json["entries"]
    erased = [e for e in entries if e["action"] == "subject.erased"]
    assert erased and erased[0]["details"]["fields_held"] == ["first_name"]


def test_held_fields_and_their_key_are_destroyed_when_the_hold_ends(
        app: Flask, client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    from sqlalchemy import select

    from api.db import db
    from privacy.storage.models import HeldField, KeyringEntry
    from retention.jobs import release_legal_holds

    subject_id = sign_up(client, writer)
    verify(client, mailbox, open_request(client, "erasure")["id"])
    with app.app_context():
        held = db.session.scalars(select(HeldField).where(HeldField.subject_id == subject_id)).one()
        until, key_name = held.until, held.key_name
        db.session.rollback()
        assert release_legal_holds(current(), until - dt.timedelta(days=1)) == 0
        assert release_legal_holds(current(), until + dt.timedelta(seconds=1)) == 1
        assert db.session.scalars(select(HeldField)).all() == []
        assert db.session.get(KeyringEntry, key_name) is not None  # the month is not over yet
        db.session.rollback()
        release_legal_holds(current(), until + dt.timedelta(days=32))
        assert db.session.get(KeyringEntry, key_name) is None


# --- rectification, restriction, objection -------------------------------------------

def test_rectification_corrects_a_field(client: FlaskClient, writer: dict[str, str], officer: dict[str, str],
                                        mailbox: Mailbox) -> None:
    sign_up(client, writer)
    req = open_request(client, "rectification", changes={"first_name": "Anna-Karin"})
    verify(client, mailbox, req["id"])
    assert client.get(f"/v1/subjects?email={ANNA}", headers=officer).json["fields"]["first_name"] == "Anna-Karin"


def test_a_rectification_to_another_subjects_address_fails_and_changes_nothing(
        client: FlaskClient, writer: dict[str, str], officer: dict[str, str], mailbox: Mailbox) -> None:
    sign_up(client, writer)
    sign_up(client, writer, email="bo@example.se")
    req = open_request(client, "rectification", changes={"email": "bo@example.se", "first_name": "Annika"})
    assert verify(client, mailbox, req["id"])["status"] == "partially_completed"
    view = client.get(f"/v1/requests/{req['id']}", headers=officer).json
    assert view["systems"][0]["status"] == "failed" and "another subject" in view["systems"][0]["last_error"]
    assert client.get(f"/v1/subjects?email={ANNA}", headers=officer).json["fields"]["first_name"] == "Anna"
    assert "could not finish" in last_mail_text(mailbox)


def test_an_invalid_rectification_is_422_and_changes_nothing(
        client: FlaskClient, writer: dict[str, str], officer: dict[str, str]) -> None:
    sign_up(client, writer)
    r = client.post("/v1/requests", json={"type": "rectification", "email": ANNA,
                                          "changes": {"birth_date": "tomorrow"}})
    assert r.status_code == 422
    assert "changes.birth_date" in r.json["error"]["details"]
    assert client.get("/v1/requests", headers=officer).json["requests"] == []
    assert client.get(f"/v1/subjects?email={ANNA}", headers=officer).json["fields"]["birth_date"] == "1990-04-01"


def test_a_restricted_subject_is_denied_in_bulk_checks_until_lifted(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str], officer: dict[str, str],
        mailbox: Mailbox) -> None:
    sign_up(client, writer)
    sign_up(client, writer, email="bo@example.se")
    check = {"purpose": "loyalty_club", "emails": [ANNA, "bo@example.se"]}
    assert client.post("/v1/consents/check", json=check, headers=reader).json["allowed"] == [ANNA, "bo@example.se"]
    req = open_request(client, "restriction")
    verify(client, mailbox, req["id"])
    result = client.post("/v1/consents/check", json=check, headers=reader).json
    assert result["denied"] == [ANNA] and result["allowed"] == ["bo@example.se"]
    before = len(mailbox.to(ANNA))
    lifted = client.post(f"/v1/requests/{req['id']}/lift-restriction", json={"reason": "accuracy confirmed"},
                         headers=officer)
    assert lifted.status_code == 200
    assert len(mailbox.to(ANNA)) == before + 1 and "lifted" in last_mail_text(mailbox)
    assert client.post("/v1/consents/check", json=check, headers=reader).json["allowed"] == [ANNA, "bo@example.se"]


def test_a_restriction_whose_request_was_forgotten_is_lifted_and_told_at_the_subjects_address(
        app: Flask, client: FlaskClient, writer: dict[str, str], reader: dict[str, str], officer: dict[str, str],
        mailbox: Mailbox) -> None:
    sign_up(client, writer)
    req = open_request(client, "restriction")
    verify(client, mailbox, req["id"])
    with app.app_context():
        assert forget_closed_requests(current(), utcnow() + dt.timedelta(days=91)) == 1
    before = len(mailbox.to(ANNA))
    lifted = client.post(f"/v1/requests/{req['id']}/lift-restriction", json={"reason": "accuracy confirmed"},
                         headers=officer)
    assert lifted.status_code == 200, lifted.json
    assert len(mailbox.to(ANNA)) == before + 1 and "lifted" in last_mail_text(mailbox)
    check = {"purpose": "loyalty_club", "emails": [ANNA]}
    assert client.post("/v1/consents/check", json=check, headers=reader).json["allowed"] == [ANNA]


def test_rejecting_a_request_closed_long_ago_is_a_conflict_and_mails_nothing(
        app: Flask, client: FlaskClient, officer: dict[str, str], mailbox: Mailbox) -> None:
    req = open_request(client, "access")
    assert client.post(f"/v1/requests/{req['id']}/reject", json={"reason": "unfounded"},
                       headers=officer).status_code == 200
    with app.app_context():
        assert forget_closed_requests(current(), utcnow() + dt.timedelta(days=91)) == 1
    before = len(mailbox.messages())
    again = client.post(f"/v1/requests/{req['id']}/reject", json={"reason": "unfounded"}, headers=officer)
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"
    assert len(mailbox.messages()) == before


def test_objection_withdraws_the_named_purposes_at_once(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str], mailbox: Mailbox) -> None:
    subject_id = sign_up(client, writer)
    req = open_request(client, "objection", purposes=["loyalty_club"])
    verify(client, mailbox, req["id"])
    states = client.get(f"/v1/subjects/{subject_id}/consents", headers=reader).json["consents"]
    assert states["loyalty_club"]["status"] == "withdrawn"
    check = client.post("/v1/consents/check", json={"purpose": "loyalty_club", "emails": [ANNA]}, headers=reader)
    assert check.json["denied"] == [ANNA]


# --- officer: deadlines, extension, refusal, queue -------------------------------------

def test_one_extension_is_allowed_and_mailed_with_its_reason(
        client: FlaskClient, officer: dict[str, str], mailbox: Mailbox) -> None:
    req = open_request(client, "access")
    r = client.post(f"/v1/requests/{req['id']}/extend", json={"days": 30, "reason": "many systems to search"},
                    headers=officer)
    assert r.status_code == 200
    assert r.json["extended_until"] > r.json["due_at"]
    assert "many systems to search" in last_mail_text(mailbox)
    second = client.post(f"/v1/requests/{req['id']}/extend", json={"days": 5, "reason": "again"}, headers=officer)
    assert second.status_code == 409


def test_an_extension_after_the_first_month_is_refused(
        client: FlaskClient, officer: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    req = open_request(client, "access")
    monkeypatch.setattr("api.requests.routes.now", lambda: utcnow() + dt.timedelta(days=40))
    r = client.post(f"/v1/requests/{req['id']}/extend", json={"days": 10, "reason": "late"}, headers=officer)
    assert r.status_code == 409


@pytest.mark.parametrize("body", [{"days": 0, "reason": "x"}, {"days": 62, "reason": "x"}, {"days": "5", "reason": "x"},
                                  {"days": 5}, {"days": 5, "reason": ""}])
def test_a_bad_extension_is_refused(client: FlaskClient, officer: dict[str, str], body: dict[str, Any]) -> None:
    req = open_request(client, "access")
    assert client.post(f"/v1/requests/{req['id']}/extend", json=body, headers=officer).status_code == 422


def test_a_refusal_is_mailed_with_the_reason_and_the_right_to_complain(
        client: FlaskClient, officer: dict[str, str], mailbox: Mailbox) -> None:
    req = open_request(client, "erasure")
    r = client.post(f"/v1/requests/{req['id']}/reject", json={"reason": "manifestly unfounded"}, headers=officer)
    assert r.status_code == 200 and r.json["status"] == "rejected"
    text = last_mail_text(mailbox)
    assert "manifestly unfounded" in text and "imy.se" in text
    assert client.post(f"/v1/requests/{req['id']}/reject", json={"reason": "x"}, headers=officer).status_code == 409


def test_the_queue_filters_and_sorts_by_deadline(
        client: FlaskClient, officer: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first = open_request(client, "access")
    open_request(client, "erasure", email="bo@example.se")
    rows = client.get("/v1/requests", headers=officer).json["requests"]
    assert rows[0]["id"] == first["id"]
    assert [r["type"] for r in client.get("/v1/requests?type=erasure", headers=officer).json["requests"]] == [
        "erasure"]
    assert client.get("/v1/requests?overdue=true", headers=officer).json["requests"] == []
    monkeypatch.setattr("api.requests.routes.now", lambda: utcnow() + dt.timedelta(days=40))
    assert len(client.get("/v1/requests?overdue=true", headers=officer).json["requests"]) == 2
    assert client.get("/v1/requests?status=nonsense", headers=officer).status_code == 422


def test_the_queue_needs_the_officer_scope(client: FlaskClient, writer: dict[str, str]) -> None:
    assert client.get("/v1/requests").status_code == 401
    assert client.get("/v1/requests", headers=writer).status_code == 403


# --- rate limits ----------------------------------------------------------------------

def test_requests_are_rate_limited_per_email_with_retry_after(make_app: Any) -> None:
    app = make_app(REQUEST_LIMIT_EMAIL="2 per hour", REQUEST_LIMIT_IP="100 per hour")
    client = app.test_client()
    for _ in range(2):
        assert client.post("/v1/requests", json={"type": "access", "email": ANNA}).status_code == 202
    r = client.post("/v1/requests", json={"type": "access", "email": ANNA.upper()})
    assert r.status_code == 429
    assert r.json["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    assert client.post("/v1/requests", json={"type": "access", "email": "bo@example.se"}).status_code == 202


def test_a_limited_route_tells_its_limit_in_headers_and_others_do_not(client: FlaskClient,
                                                                      reader: dict[str, str]) -> None:
    limited = client.post("/v1/requests", json={"type": "access", "email": ANNA})
    assert limited.status_code == 202
    assert int(limited.headers["X-RateLimit-Limit"]) > 0
    assert int(limited.headers["X-RateLimit-Remaining"]) >= 0
    free = client.post("/v1/consents/check", json={"purpose": "loyalty_club", "emails": [ANNA]}, headers=reader)
    assert free.status_code == 200 and "X-RateLimit-Limit" not in free.headers


def test_every_worker_shares_one_count_in_the_database(make_app: Any) -> None:
    first = make_app(REQUEST_LIMIT_EMAIL="2 per hour").test_client()
    second = make_app(REQUEST_LIMIT_EMAIL="2 per hour").test_client()  # another gunicorn worker, same database
    assert first.post("/v1/requests", json={"type": "access", "email": ANNA}).status_code == 202
    assert second.post("/v1/requests", json={"type": "access", "email": ANNA}).status_code == 202
    assert first.post("/v1/requests", json={"type": "access", "email": ANNA}).status_code == 429


def test_rate_limit_counters_hold_no_address_and_are_purged(make_app: Any) -> None:
    from sqlalchemy import select

    from api.db import db
    from api.ratelimits import purge_expired as purge_rate_limits
    from privacy.storage.models import RateLimitCounter

    app = make_app()
    client = app.test_client()
    assert client.post("/v1/requests", json={"type": "access", "email": ANNA},
                       environ_base={"REMOTE_ADDR": "203.0.113.77"}).status_code == 202
    with app.app_context():
        keys = list(db.session.scalars(select(RateLimitCounter.key)))
        assert keys and not any("203.0.113.77" in k or "email:" in k for k in keys)
        db.session.rollback()
        assert purge_rate_limits(current(), utcnow()) == 0
        assert purge_rate_limits(current(), utcnow() + dt.timedelta(days=2)) == len(keys)


def test_requests_are_rate_limited_per_ip(make_app: Any) -> None:
    app = make_app(REQUEST_LIMIT_IP="3 per minute")
    client = app.test_client()
    for i in range(3):
        assert client.post("/v1/requests", json={"type": "access", "email": f"p{i}@example.se"}).status_code == 202
    r = client.post("/v1/requests", json={"type": "access", "email": "p9@example.se"})
    assert r.status_code == 429 and "Retry-After" in r.headers
    other = client.post("/v1/requests", json={"type": "access", "email": "p8@example.se"},
                        environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 202


# --- no enumeration -------------------------------------------------------------------

def _statements_of(app: Flask, client: FlaskClient, email: str) -> list[str]:
    from sqlalchemy import event

    from api.db import db

    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.post("/v1/requests", json={"type": "erasure", "email": email}).status_code == 202
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_intake_runs_the_same_statements_for_known_and_unknown_addresses(
        app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    sign_up(client, writer)
    client.post("/v1/requests", json={"type": "access", "email": "warm-up@example.se"})
    known = _statements_of(app, client, ANNA)
    unknown = _statements_of(app, client, "nobody@example.se")
    assert known == unknown
    assert not any("FROM subjects" in s for s in known)  # nothing is looked up before verification


def test_intake_takes_about_as_long_for_known_and_unknown_addresses(make_app: Any) -> None:
    import statistics
    import time

    from api.services import unit_of_work
    from privacy.apikeys import create_key

    app = make_app(REQUEST_LIMIT_IP="1000 per minute", REQUEST_LIMIT_EMAIL="1000 per minute")
    client = app.test_client()
    with app.app_context(), unit_of_work() as session:
        _, token = create_key(session, "form", ["consent:write"], "test", utcnow())
    sign_up(client, {"Authorization": f"Bearer {token}"})
    timings: dict[str, list[float]] = {ANNA: [], "nobody@example.se": []}
    for _ in range(12):
        for email in timings:  # interleaved, so drift hits both alike
            start = time.perf_counter()
            assert client.post("/v1/requests", json={"type": "access", "email": email}).status_code == 202
            timings[email].append(time.perf_counter() - start)
    known, unknown = (statistics.median(v) for v in timings.values())
    assert 1 / 3 < known / unknown < 3, (known, unknown)


# --- the fan-out seam -------------------------------------------------------------------

def test_a_request_waits_for_every_connected_system_before_it_completes(
        make_app: Any, tmp_path: Any) -> None:
    from privacy.policy.file import DEFAULT_POLICY_FILE
    from retention.jobs import process_requests

    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text().replace("connectors: []", """connectors:
  - name: crm
    type: webhook
    url: https://crm.example.se/privacy
    secret_env: CRM_SECRET
    operations: [access, erasure]
  - name: newsletter
    type: mailchimp
    api_key_env: MAILCHIMP_KEY
    audiences: [a1b2c3d4e5]
    operations: [consent]
"""))
    app = make_app(POLICY_FILE=str(policy))
    client = app.test_client()
    mailbox = Mailbox(app)
    with app.app_context():
        from api.services import unit_of_work
        from privacy.apikeys import create_key

        with unit_of_work() as session:
            _, officer_token = create_key(session, "officer", ["requests:manage"], "test", utcnow())
            _, writer_token = create_key(session, "form", ["consent:write"], "test", utcnow())
    officer = {"Authorization": f"Bearer {officer_token}"}
    sign_up(client, {"Authorization": f"Bearer {writer_token}"})
    req = open_request(client, "erasure")
    assert verify(client, mailbox, req["id"])["status"] == "in_progress"
    systems = {s["name"]: s["status"] for s in client.get(f"/v1/requests/{req['id']}", headers=officer).json[
        "systems"]}
    assert systems == {"privacy-service": "succeeded", "crm": "pending"}  # the newsletter does not erase
    with app.app_context():
        from sqlalchemy import update

        from api.db import db
        from privacy.storage.models import RequestTask

        assert process_requests(current(), utcnow()) == 0
        db.session.execute(update(RequestTask).where(RequestTask.system == "crm").values(status="succeeded"))
        db.session.commit()
        assert process_requests(current(), utcnow()) == 1
    assert client.get(f"/v1/requests/{req['id']}", headers=officer).json["status"] == "completed"


@pytest.mark.parametrize(("hops", "second"), [(0, 429), (1, 202)])
def test_behind_a_trusted_proxy_each_customer_has_their_own_ip_limit(make_app: Any, hops: int, second: int) -> None:
    client = make_app(REQUEST_LIMIT_IP="1 per minute", PROXY_HOPS=hops).test_client()
    opened = [client.post("/v1/requests", json={"type": "access", "email": f"c{n}@example.se"},
                          headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in (1, 2)]
    # Without trusted proxies every customer is the proxy's address, and X-Forwarded-For is
    # not believed (anyone could send it); with one, each customer counts on their own.
    assert opened == [202, second]
    again = client.post("/v1/requests", json={"type": "access", "email": "c3@example.se"},
                        headers={"X-Forwarded-For": "203.0.113.1"})
    assert again.status_code == 429
