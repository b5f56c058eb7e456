"""Envelope encryption, blind index, shredding and master-key rotation."""
from __future__ import annotations

import base64
import os
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api.db import db
from api.services import current
from privacy.context import utcnow
from privacy.crypto.keys import Crypto, CryptoError, KeyShredded, MasterKeyRefused
from privacy.storage.models import Subject, SubjectField
from privacy.storage.repositories.subjects import SubjectRepository
from tests.conftest import SIGNUP


def _subject_and_fields(app: Flask, sid: str) -> tuple[Subject, dict[str, bytes]]:
    subject = db.session.get(Subject, sid)
    rows = db.session.scalars(select(SubjectField).where(SubjectField.subject_id == sid))
    fields = {f.name: f.ciphertext for f in rows}
    return subject, fields


def test_fields_decrypt_only_in_their_own_row_and_column(app: Flask, client: FlaskClient,
                                                         writer: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    with app.app_context():
        crypto = current().crypto
        subject, fields = _subject_and_fields(app, sid)
        dek = crypto.data_key(subject)
        assert crypto.decrypt_field(dek, sid, "first_name", fields["first_name"]) == "Anna"
        with pytest.raises(CryptoError):
            crypto.decrypt_field(dek, sid, "last_name", fields["first_name"])  # moved to another column
        with pytest.raises(CryptoError):
            crypto.decrypt_field(dek, "00000000-0000-0000-0000-000000000000", "first_name", fields["first_name"])


def test_blind_index_ignores_case_and_surrounding_space(app: Flask) -> None:
    with app.app_context():
        crypto = current().crypto
        assert crypto.blind_index(" Anna@Example.SE ") == crypto.blind_index("anna@example.se")
        assert crypto.blind_indexer()("ANNA@example.se") == crypto.blind_index("anna@example.se")
        assert crypto.blind_index("anna@example.se") != crypto.blind_index("anna@example.com")


def test_the_bulk_link_tokens_are_the_link_tokens(app: Flask) -> None:
    with app.app_context():
        crypto = current().crypto
        tokens = crypto.link_tokens("withdraw")
        for sid, purpose in [("01a2339a-fe6e-770d-b205-55d386a6d267", "profiling"), ("x", "y"), ("", "")]:
            assert tokens(sid, purpose) == crypto.link_token("withdraw", sid, purpose)
        assert crypto.link_tokens("withdraw", "a")("b") == crypto.link_token("withdraw", "a", "b")
        assert tokens("a", "b") != crypto.link_tokens("confirm")("a", "b")


def test_shredding_the_data_key_makes_every_field_unreadable(app: Flask, client: FlaskClient,
                                                             writer: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    with app.app_context():
        crypto = current().crypto
        subject, _fields = _subject_and_fields(app, sid)
        SubjectRepository(db.session).shred(subject.id, utcnow())
        db.session.commit()
        subject = db.session.get(Subject, sid)
        assert subject.wrapped_key is None
        with pytest.raises(KeyShredded):
            crypto.data_key(subject)


def test_a_wrong_master_key_is_refused_at_start_up(make_app: Callable[..., Flask], client: FlaskClient) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(MasterKeyRefused, match="not the key this database"):
        make_app(MASTER_KEY=other)


def test_rotate_master_rewraps_every_data_key_and_retires_the_old_one(
        make_app: Callable[..., Flask], app: Flask, client: FlaskClient, writer: dict[str, str],
        officer: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(7):
        body = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": f"p{n}@example.se"}}
        assert client.post("/v1/consents", json=body, headers=writer).status_code == 201
    with app.app_context():
        before = {f.subject_id + f.name: f.ciphertext for f in db.session.scalars(select(SubjectField))}
    new_key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("NEW_MASTER", new_key)
    result = app.test_cli_runner().invoke(args=["keys", "rotate-master", "--new-key-env", "NEW_MASTER",
                                                "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "7"
    with pytest.raises(MasterKeyRefused, match="retired"):
        make_app()
    rotated = make_app(MASTER_KEY=new_key)
    with rotated.app_context():
        after = {f.subject_id + f.name: f.ciphertext for f in db.session.scalars(select(SubjectField))}
        assert after == before  # field ciphertexts untouched
        assert {s.master_key_id for s in db.session.scalars(select(Subject))} == {current().crypto.master_key_id}
    found = rotated.test_client().get("/v1/subjects", query_string={"email": "p3@example.se"}, headers=officer)
    assert found.status_code == 200 and found.json["fields"]["first_name"] == "Anna"


def test_an_interrupted_rotation_resumes(app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    from privacy.crypto.rotation import rotate_master

    for n in range(5):
        body = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": f"r{n}@example.se"}}
        client.post("/v1/consents", json=body, headers=writer)
    new = Crypto(os.urandom(32))
    with app.app_context():
        old = current().crypto
        calls = []

        def crash_after_first_batch(n: int) -> None:
            calls.append(n)
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            rotate_master(db.session, old, new, utcnow(), batch_size=2, progress=crash_after_first_batch)
        db.session.rollback()
        moved_first = sum(calls)
        assert rotate_master(db.session, old, new, utcnow(), batch_size=2) == 5 - moved_first
        for subject in db.session.scalars(select(Subject)):
            new.data_key(subject)  # every key opens under the new master key


def test_a_shredded_subject_is_not_revived_by_a_new_sign_up(app: Flask, client: FlaskClient,
                                                            writer: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    with app.app_context():
        SubjectRepository(db.session).shred(sid, utcnow())
        db.session.commit()
    r = client.post("/v1/consents", json=SIGNUP, headers=writer)
    assert r.status_code == 409 and r.json["error"]["code"] == "subject_erased"


def test_rotate_master_rewraps_request_keys_too(
        make_app: Callable[..., Flask], app: Flask, client: FlaskClient, officer: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    opened = client.post("/v1/requests", json={"type": "access", "email": "anna@example.se"})
    assert opened.status_code == 202
    new_key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("NEW_MASTER", new_key)
    result = app.test_cli_runner().invoke(args=["keys", "rotate-master", "--new-key-env", "NEW_MASTER"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "1"
    rotated = make_app(MASTER_KEY=new_key)
    extended = rotated.test_client().post(f"/v1/requests/{opened.json['id']}/extend",
                                          json={"days": 10, "reason": "busy season"}, headers=officer)
    assert extended.status_code == 200  # the request's sealed details opened under the new master key
    assert extended.json["extension_reason"] == "busy season"
