"""The mail outbox: mails leave with the scheduler, sealed until then, retried on failure."""
from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api.db import db
from api.services import current
from privacy.context import utcnow
from privacy.mail.mailer import OutgoingMail
from privacy.mail.outbox import deliver_pending
from privacy.storage.models import OutboxMail, Subject
from privacy.storage.repositories.outbox import OutboxRepository
from privacy.storage.repositories.subjects import SubjectRepository
from tests.conftest import SIGNUP, Mailbox


def _queued(app: Flask) -> list[OutboxMail]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxMail)))
        db.session.expunge_all()
        return rows


def test_a_sign_up_queues_its_mail_sealed_and_the_job_sends_it(app: Flask, client: FlaskClient,
                                                               writer: dict[str, str], mailbox: Mailbox) -> None:
    client.post("/v1/consents", json=SIGNUP, headers=writer)
    (row,) = _queued(app)
    assert b"anna" not in row.sealed.lower()
    assert mailbox.deliver() == 1
    assert _queued(app) == []
    assert len(mailbox.to("anna@example.se")) == 1
    assert mailbox.deliver() == 0  # sent once


def test_a_refused_sign_up_queues_no_mail(app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    body = {**SIGNUP, "subject": {**SIGNUP["subject"], "birth_date": "2020-01-01"}}
    assert client.post("/v1/consents", json=body, headers=writer).status_code == 422
    assert _queued(app) == []


def test_mail_to_a_shredded_subject_is_never_sent(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                  mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    with app.app_context():
        SubjectRepository(db.session).shred(sid, utcnow())
        db.session.commit()
    assert mailbox.deliver() == 0
    assert _queued(app) == [] and mailbox.messages() == []


class _Down:
    def send(self, mail: OutgoingMail) -> None:
        raise ConnectionRefusedError("smtp down")


def test_a_failed_send_is_retried_later_with_backoff(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                     mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    client.post("/v1/consents", json=SIGNUP, headers=writer)
    now = utcnow()
    with app.app_context():
        real = current().mailer
        monkeypatch.setattr(current(), "mailer", _Down())
        assert deliver_pending(current(), now) == 0
        (row,) = _queued(app)
        assert row.attempts == 1 and row.last_error == "ConnectionRefusedError"
        assert row.next_attempt_at > now
        assert deliver_pending(current(), now + dt.timedelta(seconds=1)) == 0  # not due yet
        monkeypatch.setattr(current(), "mailer", real)
        assert deliver_pending(current(), now + dt.timedelta(minutes=2)) == 1
    assert len(mailbox.messages()) == 1


def _queue(app: Flask, subject_id: str, mail: OutgoingMail | dict[str, object]) -> None:
    """Queue ``mail`` for the subject as a request would (sealed under its data key)."""
    from privacy.mail.outbox import sealed_mail

    with app.app_context():
        crypto = current().crypto
        dek = crypto.data_key(db.session.get(Subject, subject_id))
        OutboxRepository(db.session).add([sealed_mail(crypto, dek, subject_id, mail, utcnow())])
        db.session.commit()


def test_a_mail_queued_already_written_is_sent_as_it_was_written(
        app: Flask, client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    # Rows queued before the opt-in mail was written at sending time hold the whole mail.
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    mailbox.deliver()
    _queue(app, sid, OutgoingMail(to="anna@example.se", subject="Written before", text="Kept as it was.",
                                  headers={"List-Unsubscribe": "<http://privacy.test/w>"}))
    assert mailbox.deliver() == 1
    (mail,) = [m for m in mailbox.to("anna@example.se") if m["Subject"] == "Written before"]
    assert mail.get_content().strip() == "Kept as it was." and mail["List-Unsubscribe"] == "<http://privacy.test/w>"


def test_the_opt_in_mail_is_written_when_sent_and_names_the_pending_purposes(
        app: Flask, client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    client.post("/v1/consents", json=SIGNUP, headers=writer)
    (row,) = _queued(app)
    with app.app_context():
        crypto = current().crypto
        subject = db.session.get(Subject, row.subject_id)
        note = crypto.decrypt_field(crypto.data_key(subject), subject.id, f"outbox/{row.id}", row.sealed)
    assert '"template": "double_opt_in"' in note and "Please confirm" not in note  # not written yet
    (mail,) = mailbox.to("anna@example.se")
    text = mail.get_content()
    assert "  - Offers by e-mail" in text  # the pending purpose, by its name in the catalogue
    assert "/v1/consents/confirm/" in text and mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_an_entry_with_an_unknown_template_is_retried_not_sent(
        app: Flask, client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    mailbox.deliver()
    _queue(app, sid, {"template": "no_such_template", "to": "anna@example.se"})
    assert mailbox.deliver() == 0
    (row,) = _queued(app)
    assert row.attempts == 1 and row.last_error == "ValueError"
