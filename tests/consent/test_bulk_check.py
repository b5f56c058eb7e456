"""Bulk consent checks are set-based: a fixed handful of queries, whatever the input size."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from api.db import db
from privacy.consent.service import CHECK_CHUNK
from tests.conftest import SIGNUP


@contextmanager
def count_queries(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _grant(client: FlaskClient, writer: dict[str, str], n: int) -> list[str]:
    emails = [f"member{i}@example.se" for i in range(n)]
    for email in emails:
        body = {**SIGNUP, "subject": {"email": email}, "purposes": {"profiling": True}}
        assert client.post("/v1/consents", json=body, headers=writer).status_code == 201
    return emails


def test_the_number_of_queries_does_not_grow_with_the_inputs(app: Flask, client: FlaskClient,
                                                             writer: dict[str, str], reader: dict[str, str]) -> None:
    known = _grant(client, writer, 5)
    sizes = {}
    for size in (10, 2 * CHECK_CHUNK):
        emails = known + [f"stranger{i}@example.se" for i in range(size - len(known))]
        with count_queries(app) as queries:
            r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": emails}, headers=reader)
        assert r.status_code == 200
        assert r.json["allowed"] == known and len(r.json["denied"]) == size - len(known)
        sizes[size] = len([q for q in queries if "consent_states" in q])
    assert sizes[10] == 1
    assert 1 <= sizes[2 * CHECK_CHUNK] <= 2  # one array query (PostgreSQL) or one per 10,000 (SQLite)


def test_a_large_check_by_subject_id_finds_the_allowed_ones(client: FlaskClient, writer: dict[str, str],
                                                            reader: dict[str, str]) -> None:
    ids = []
    for i in range(3):
        body = {**SIGNUP, "subject": {"email": f"sid{i}@example.se"}, "purposes": {"profiling": i != 1}}
        ids.append(client.post("/v1/consents", json=body, headers=writer).json["subject_id"])
    strangers = [f"00000000-0000-4000-8000-{i:012d}" for i in range(200)]
    r = client.post("/v1/consents/check", json={"purpose": "profiling", "subject_ids": strangers + ids},
                    headers=reader)
    assert r.json["allowed"] == [ids[0], ids[2]]
    assert len(r.json["denied"]) == 201


@pytest.mark.slow
def test_one_call_checks_100000_emails(client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    known = _grant(client, writer, 20)
    emails = [f"stranger{i}@example.se" for i in range(100_000 - len(known))] + known
    r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": emails}, headers=reader)
    assert r.status_code == 200
    assert r.json["allowed"] == known
    assert len(r.json["denied"]) == 100_000 - len(known)
    too_many = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": [*emails, "x@y.se"]},
                           headers=reader)
    assert too_many.status_code == 422 and "emails" in too_many.json["error"]["details"]


def test_a_restricted_subject_is_denied(app: Flask, client: FlaskClient, writer: dict[str, str],
                                        reader: dict[str, str]) -> None:
    from privacy.storage.models import Subject

    (email,) = _grant(client, writer, 1)
    with app.app_context():
        subject = db.session.query(Subject).one()
        subject.restricted = True
        db.session.commit()
    r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": [email]}, headers=reader)
    assert r.json["denied"] == [email]
