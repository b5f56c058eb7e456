"""The consent ledger's shards: sign-ups spread over them and verify; the anchor catches
a shard's newest entries cut off with its head; entries chained before the shards still
verify; on PostgreSQL, sign-ups of different subjects run side by side."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from api.db import db
from api.services import current
from privacy.consent.service import ConsentCommand, ConsentService
from privacy.context import utcnow
from privacy.crypto.keys import verify_jws
from privacy.ledger import append_consent_events, chain_hash, timestamp, verification
from privacy.storage.repositories.ledger import GENESIS, SHARDS, shard_head, shard_of
from retention.jobs import ledger_anchor
from tests.conftest import PG_URL, SIGNUP
from tests.test_ledger import _seqs_of, _tamper


def _sign_up(client: FlaskClient, writer: dict[str, str], email: str) -> dict[str, Any]:
    answer = client.post("/v1/consents", json={**SIGNUP, "subject": {**SIGNUP["subject"], "email": email}},
                         headers=writer)
    assert answer.status_code == 201
    return answer.json


def _verify(client: FlaskClient, admin: dict[str, str]) -> dict[str, Any]:
    return client.get("/v1/audit/verify", headers=admin).json


def test_sign_ups_of_many_subjects_spread_over_the_shards_and_verify(app: Flask, client: FlaskClient,
                                                                   writer: dict[str, str],
                                                                   admin: dict[str, str]) -> None:
    subjects = [_sign_up(client, writer, f"p{n}@example.se")["subject_id"] for n in range(40)]
    assert len({shard_of(s) for s in subjects}) > 16
    with app.app_context(), db.engine.connect() as conn:
        seqs = list(conn.execute(text("SELECT seq FROM consent_events")).scalars())
    assert len(seqs) == len(set(seqs)) == 120
    report = _verify(client, admin)
    assert report["ok"] is True and report["chains"][0] == {"chain": "consent", "ok": True, "entries": 120}


def test_cutting_a_shards_newest_entry_and_rewinding_its_head_is_caught_by_the_anchor(
        app: Flask, client: FlaskClient, writer: dict[str, str], admin: dict[str, str]) -> None:
    _sign_up(client, writer, "b@example.se")  # first: the cut entry is its shard's newest wherever b falls
    subject = _sign_up(client, writer, "a@example.se")["subject_id"]
    with app.app_context():
        assert ledger_anchor(current(), utcnow()) == 1
    seqs = _seqs_of(app, subject)
    with app.app_context(), db.engine.connect() as conn:
        kept = conn.execute(text(f"SELECT hash FROM consent_events WHERE seq = {seqs[-2]}")).scalar_one()
    _tamper(app, f"DELETE FROM consent_events WHERE seq = {seqs[-1]}",
            f"UPDATE chain_heads SET seq = {seqs[-2]}, hash = '{kept}' WHERE name = '{shard_head(shard_of(subject))}'")
    report = _verify(client, admin)
    assert report["ok"] is False
    assert report["first_broken"]["seq"] == seqs[-1]
    assert report["first_broken"]["reason"].startswith("entries named by the anchor of ")
    assert report["first_broken"]["reason"].endswith(" are missing")


def _legacy_events(app: Flask, count: int) -> str:
    """``count`` events chained as before the shards (one chain, seq 1, 2, ...) with raw
    INSERTs, and the legacy head moved to the last; its hash."""
    prev = GENESIS
    now = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        for seq in range(1, count + 1):
            row = {"seq": seq, "subject_id": f"old-{seq % 3}", "purpose": "profiling", "action": "granted",
                   "status": "granted", "notice_version": "v1", "text_hash": None, "source": '{"form": "old"}'}
            body = {**row, "source": json.loads(row["source"]), "recorded_at": timestamp(now)}
            digest = chain_hash(prev, body)
            conn.execute(db.metadata.tables["consent_events"].insert(),
                         {**row, "recorded_at": now, "prev_hash": prev, "hash": digest})
            prev = digest
        conn.execute(text("DELETE FROM chain_heads WHERE name = 'consent'"))
        conn.execute(text(f"INSERT INTO chain_heads (name, seq, hash) VALUES ('consent', {count}, '{prev}')"))
    return prev


def test_entries_chained_before_the_shards_and_receipts_issued_before_still_verify(
        make_app: Callable[..., Flask], auth: Callable[..., dict[str, str]]) -> None:
    from flask_migrate import downgrade, upgrade

    app = make_app()
    with app.app_context():
        downgrade(revision="0010")
    try:
        _legacy_events(app, 7)
        client = app.test_client()
        writer, admin = auth("consent:write"), auth("admin")
        receipt = _sign_up(client, writer, "before@example.se")["receipt"]  # schema still at 0010
    finally:
        with app.app_context():
            upgrade()
    with app.app_context(), db.engine.connect() as conn:
        heads = dict(conn.execute(text("SELECT name, seq FROM chain_heads")).all())
    assert heads["consent"] == 7 and len([n for n in heads if n.startswith("consent/")]) == SHARDS
    subjects = [_sign_up(client, writer, f"after{n}@example.se")["subject_id"] for n in range(5)]
    assert all(seq > 7 and (seq - 7 - 1) % SHARDS == shard_of(s) for s in subjects for seq in _seqs_of(app, s))
    report = _verify(client, admin)
    assert report["ok"] is True and report["chains"][0]["entries"] == 7 + 3 + 15
    key = client.get("/v1/receipts/keys").json["keys"][0]
    assert verify_jws(receipt["signature"], key["x"]) == {k: v for k, v in receipt.items() if k != "signature"}
    _tamper(app, "UPDATE consent_events SET status = 'withdrawn' WHERE seq = 4")
    assert _verify(client, admin)["first_broken"] == {"chain": "consent", "seq": 4,
                                                      "reason": "content does not match its hash"}


def test_cutting_the_legacy_chains_last_entry_is_caught(make_app: Callable[..., Flask],
                                                       auth: Callable[..., dict[str, str]]) -> None:
    from flask_migrate import downgrade, upgrade

    app = make_app()
    with app.app_context():
        downgrade(revision="0010")
    try:
        _legacy_events(app, 4)
    finally:
        with app.app_context():
            upgrade()
    client, writer, admin = app.test_client(), auth("consent:write"), auth("admin")
    _sign_up(client, writer, "after@example.se")
    _tamper(app, "DELETE FROM consent_events WHERE seq = 4")
    assert _verify(client, admin)["first_broken"] == {"chain": "consent", "seq": 4, "reason": "entry missing"}


postgres_only = pytest.mark.skipif(not PG_URL, reason="row locks are PostgreSQL's (SQLite has one writer)")


def _command(email: str) -> ConsentCommand:
    return ConsentCommand(purposes=dict(SIGNUP["purposes"]), source=SIGNUP["source"],
                          subject={**SIGNUP["subject"], "email": email}, notice_version=SIGNUP["notice_version"])


@postgres_only
def test_concurrent_sign_ups_of_different_subjects_all_complete_and_the_ledger_verifies(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    threads, per_thread, errors = 8, 6, []

    def sign_up(n: int) -> None:
        try:
            with app.app_context():
                service = ConsentService(current())
                for i in range(per_thread):
                    service.record(_command(f"t{n}-{i}@example.se"), utcnow())
                current().database.session.remove()
        except Exception as error:  # reported below
            errors.append(error)

    workers = [threading.Thread(target=sign_up, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == [] and not any(w.is_alive() for w in workers)
    report = _verify(client, admin)
    assert report["ok"] is True and report["chains"][0]["entries"] == threads * per_thread * 3


def _event(subject_id: str) -> dict[str, Any]:
    return {"subject_id": subject_id, "purpose": "profiling", "action": "granted", "status": "granted",
            "notice_version": "v1", "text_hash": None, "source": '{"form": "test"}', "recorded_at": utcnow()}


def _same_shard_subjects(count: int, shard: int) -> list[str]:
    return [s for s in (f"subject-{n}" for n in range(5000)) if shard_of(s) == shard][:count]


@postgres_only
def test_two_appends_to_one_shard_wait_for_each_other_and_chain_in_commit_order(app: Flask) -> None:
    first_id, second_id = _same_shard_subjects(2, 7)
    other_id = _same_shard_subjects(1, 8)[0]
    holding, other_done = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def first() -> None:
        with app.app_context(), current().database.raw_write() as tx:
            results["first"] = append_consent_events(tx, [_event(first_id)])[0]
            holding.set()
            results["other_ran_meanwhile"] = other_done.wait(10)  # another shard does not wait
            time.sleep(0.3)
            results["first_commit"] = time.monotonic()

    def second(subject_id: str, key: str, done: threading.Event | None = None) -> None:
        holding.wait(10)
        with app.app_context(), current().database.raw_write() as tx:
            results[key] = append_consent_events(tx, [_event(subject_id)])[0]
            results[key + "_at"] = time.monotonic()
        if done is not None:
            done.set()

    workers = [threading.Thread(target=first), threading.Thread(target=second, args=(second_id, "second")),
               threading.Thread(target=second, args=(other_id, "other", other_done))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert results["other_ran_meanwhile"] is True
    assert results["second_at"] >= results["first_commit"]
    assert results["second"]["seq"] == results["first"]["seq"] + SHARDS
    assert results["second"]["prev_hash"] == results["first"]["hash"]
    with app.app_context():
        assert verification(current().database.session())["ok"]
