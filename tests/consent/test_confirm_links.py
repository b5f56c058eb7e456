"""Double opt-in links carry what they confirm under a MAC; using one is what is stored."""
from __future__ import annotations

import base64
import datetime as dt
import secrets

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.db import db
from api.services import current
from privacy.consent import confirm_links
from privacy.context import utcnow
from privacy.crypto.keys import b64url, token_hash
from privacy.storage.models import Confirmation
from privacy.storage.repositories.subjects import SubjectRepository
from tests.conftest import SIGNUP, Mailbox, local_path

JSON = {"Accept": "application/json"}


def _link(mailbox: Mailbox) -> str:
    return local_path(mailbox.link(mailbox.to(SIGNUP["subject"]["email"])[-1], "/confirm/"))


def _status(client: FlaskClient, sid: str, reader: dict[str, str]) -> str:
    return str(client.get(f"/v1/subjects/{sid}/consents", headers=reader).json["consents"]["marketing_email"]["status"])


def test_a_sign_up_stores_nothing_for_its_link_and_a_click_stores_its_use(
        app: Flask, client: FlaskClient, writer: dict[str, str], reader: dict[str, str], mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Confirmation)) == 0
    r = client.post(_link(mailbox), headers=JSON)
    assert r.status_code == 200 and r.json == {"subject_id": sid, "confirmed": ["marketing_email"]}
    assert _status(client, sid, reader) == "granted"
    with app.app_context():
        (used,) = db.session.scalars(select(Confirmation)).all()
        assert used.subject_id == sid and used.used_at is not None
        assert used.expires_at > utcnow() + dt.timedelta(days=13)  # the policy's 14 days


def test_a_link_with_another_subject_or_purpose_written_in_is_unknown(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str], mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    token = _link(mailbox).rsplit("/", 1)[1]
    encoded, mac = token.split(".")
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    for forged in (payload.replace("marketing_email", "profiling"), payload.replace(sid, "0" * 8 + sid[8:]),
                   payload.replace(payload.split("|")[2], str(int(payload.split("|")[2]) + 86400 * 365))):
        r = client.post(f"/v1/consents/confirm/{b64url(forged.encode())}.{mac}", headers=JSON)
        assert r.status_code == 404 and "token" in r.json["error"]["details"]
    assert _status(client, sid, reader) == "pending"


def test_a_withdraw_token_does_not_pass_for_a_confirm_link(app: Flask, client: FlaskClient,
                                                          writer: dict[str, str], reader: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    with app.app_context():
        payload = f"{sid}|0|{int(utcnow().timestamp()) + 3600}|marketing_email"
        withdraw_mac = current().crypto.link_token("withdraw", payload)
    r = client.post(f"/v1/consents/confirm/{b64url(payload.encode())}.{withdraw_mac}", headers=JSON)
    assert r.status_code == 404
    assert _status(client, sid, reader) == "pending"


def test_a_link_confirms_nothing_after_its_own_date(
        monkeypatch: pytest.MonkeyPatch, client: FlaskClient, writer: dict[str, str], reader: dict[str, str],
        mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    monkeypatch.setattr("api.consents.routes.now", lambda: utcnow() + dt.timedelta(days=15))
    r = client.post(_link(mailbox), headers=JSON)
    assert r.status_code == 410 and r.json["error"]["code"] == "token_expired"
    assert _status(client, sid, reader) == "pending"


def test_the_link_of_an_erased_subject_is_unknown(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                 mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    link = _link(mailbox)
    with app.app_context():
        SubjectRepository(db.session).shred(sid, utcnow())
        db.session.commit()
    assert client.post(link, headers=JSON).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Confirmation)) == 0


def test_a_link_mailed_before_links_carried_their_purposes_confirms_once(
        app: Flask, client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    token = secrets.token_urlsafe(32)  # the former kind: random, its hash stored at sign-up
    assert confirm_links.is_legacy(token)
    with app.app_context():
        now = utcnow()
        db.session.add(Confirmation(token_hash=token_hash(token), subject_id=sid,
                                    purposes='["marketing_email"]', created_at=now,
                                    expires_at=now + dt.timedelta(days=14)))
        db.session.commit()
    assert client.post(f"/v1/consents/confirm/{token}", headers=JSON).json["confirmed"] == ["marketing_email"]
    assert _status(client, sid, reader) == "granted"
    again = client.post(f"/v1/consents/confirm/{token}", headers=JSON)
    assert again.status_code == 410 and again.json["error"]["code"] == "token_used"


def test_a_token_reads_back_what_it_was_issued_for(app: Flask) -> None:
    with app.app_context():
        crypto = current().crypto
        now = utcnow()
        token = confirm_links.issue(crypto, "s-1", ["marketing_email", "sms"], now, 14)
        link = confirm_links.read(crypto, token)
    assert not confirm_links.is_legacy(token)
    assert link == confirm_links.ConfirmLink("s-1", ["marketing_email", "sms"], now,
                                             (now + dt.timedelta(days=14)).replace(microsecond=0))
