"""The consent ledger and audit log: append-only and hash-chained."""
from __future__ import annotations

import itertools
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.db import db
from privacy.ledger import canonical, chain_hash, timestamp
from privacy.storage.models import ConsentEvent
from privacy.storage.repositories.ledger import SHARDS
from tests.conftest import SIGNUP


def _tamper(app: Flask, *statements: str) -> None:
    """What an attacker with write access to the database could do, triggers and all."""
    with app.app_context():
        dialect = db.engine.dialect.name
        with db.engine.begin() as conn:
            if dialect == "sqlite":
                conn.execute(text("DROP TRIGGER consent_events_no_update"))
                conn.execute(text("DROP TRIGGER consent_events_no_delete"))
            else:
                conn.execute(text("ALTER TABLE consent_events DISABLE TRIGGER consent_events_append_only"))
            for sql in statements:
                conn.execute(text(sql))
            if dialect != "sqlite":
                conn.execute(text("ALTER TABLE consent_events ENABLE TRIGGER consent_events_append_only"))


def _three_signups(client: FlaskClient, writer: dict[str, str]) -> list[list[int]]:
    """Three sign-ups (three events each, every subject's in its own shard); each one's seqs."""
    seqs = []
    for name in ("a", "b", "c"):
        body = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": f"{name}@example.se"}}
        answer = client.post("/v1/consents", json=body, headers=writer)
        assert answer.status_code == 201
        seqs.append(_seqs_of(client.application, answer.json["subject_id"]))
    return seqs


def _seqs_of(app: Flask, subject_id: str) -> list[int]:
    with app.app_context(), db.engine.connect() as conn:
        return list(conn.execute(text("SELECT seq FROM consent_events WHERE subject_id = :s ORDER BY seq"),
                                 {"s": subject_id}).scalars())


def test_an_untouched_ledger_verifies(client: FlaskClient, writer: dict[str, str], admin: dict[str, str],
                                      runner: object) -> None:
    _three_signups(client, writer)
    r = client.get("/v1/audit/verify", headers=admin)
    assert r.json["ok"] is True
    assert {c["chain"]: c["entries"] for c in r.json["chains"]}["consent"] == 9
    result = runner.invoke(args=["audit", "verify"])  # type: ignore[attr-defined]
    assert result.exit_code == 0 and result.output.startswith("ok")


def test_a_subjects_events_are_one_shards_entries_64_apart(client: FlaskClient, writer: dict[str, str]) -> None:
    for seqs in _three_signups(client, writer):
        assert [b - a for a, b in itertools.pairwise(seqs)] == [SHARDS, SHARDS]


def test_a_changed_event_is_caught_at_that_entry(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                 admin: dict[str, str]) -> None:
    seq = _three_signups(client, writer)[1][2]
    _tamper(app, f"UPDATE consent_events SET status = 'granted' WHERE seq = {seq}")
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["ok"] is False
    assert r["first_broken"] == {"chain": "consent", "seq": seq, "reason": "content does not match its hash"}
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f'"seq": {seq}' in result.output


def test_a_deleted_event_in_the_middle_of_a_shard_is_caught(app: Flask, client: FlaskClient,
                                                            writer: dict[str, str], admin: dict[str, str]) -> None:
    seq = _three_signups(client, writer)[0][1]
    _tamper(app, f"DELETE FROM consent_events WHERE seq = {seq}")
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["first_broken"] == {"chain": "consent", "seq": seq, "reason": "entry missing"}


def test_removing_the_newest_events_of_a_shard_is_caught(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                         admin: dict[str, str]) -> None:
    seqs = _three_signups(client, writer)[2]
    _tamper(app, f"DELETE FROM consent_events WHERE seq >= {seqs[1]}")  # the shard's head still names the last
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["ok"] is False
    assert r["first_broken"] == {"chain": "consent", "seq": seqs[1], "reason": "entries after this point were removed"}


def test_two_swapped_entries_are_caught(app: Flask, client: FlaskClient, writer: dict[str, str],
                                       admin: dict[str, str]) -> None:
    first, second, _ = _three_signups(client, writer)[0]
    _tamper(app, f"UPDATE consent_events SET seq = -1 WHERE seq = {first}",
            f"UPDATE consent_events SET seq = {first} WHERE seq = {second}",
            f"UPDATE consent_events SET seq = {second} WHERE seq = -1")
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["first_broken"] == {"chain": "consent", "seq": first, "reason": "does not link to the entry before it"}


def test_an_inserted_entry_is_caught_though_it_links_and_hashes_right(app: Flask, client: FlaskClient,
                                                                      writer: dict[str, str],
                                                                      admin: dict[str, str]) -> None:
    """A forged entry after a shard's last, linked and hashed as the service would: the
    shard's head does not name it (the last sign-up's shard: its entries are that shard's newest)."""
    seqs = _three_signups(client, writer)[2]
    with app.app_context(), db.engine.connect() as conn:
        events = ConsentEvent.__table__
        last = conn.execute(events.select().where(events.c.seq == seqs[-1])).mappings().one()
    forged = {**last, "seq": last["seq"] + SHARDS, "action": "withdrawn", "status": "withdrawn",
              "prev_hash": last["hash"]}
    body = {k: forged[k] for k in ("seq", "subject_id", "purpose", "action", "status", "notice_version",
                                   "text_hash")}
    body |= {"source": json.loads(forged["source"]), "recorded_at": timestamp(forged["recorded_at"])}
    forged["hash"] = chain_hash(last["hash"], body)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(ConsentEvent.__table__.insert(), forged)
    r = client.get("/v1/audit/verify", headers=admin).json
    assert r["first_broken"] == {"chain": "consent", "seq": forged["seq"], "reason": "chain head mismatch"}


@pytest.mark.parametrize("sql", [
    "UPDATE consent_events SET status = 'granted'",
    "DELETE FROM consent_events",
    "UPDATE audit_log SET actor = 'nobody'",
    "DELETE FROM audit_log",
])
def test_the_database_refuses_to_change_ledger_rows(app: Flask, client: FlaskClient, writer: dict[str, str],
                                                    sql: str) -> None:
    _three_signups(client, writer)
    with app.app_context(), pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(sql))


def reference_canonical(data: dict[str, object]) -> bytes | None:
    """The definition of the hashed bytes (the standard library's encoder), or None when
    the data cannot be written as UTF-8 at all (a lone surrogate)."""
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        return None


scalars = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True))
entries = st.dictionaries(st.text(), st.one_of(scalars, st.dictionaries(st.text(), scalars, max_size=4)), max_size=8)


@settings(max_examples=400, deadline=None)
@given(entries)
def test_hashed_bytes_are_the_standard_librarys_json_for_any_entry(data: dict[str, object]) -> None:
    expected = reference_canonical(data)
    if expected is None:
        with pytest.raises(UnicodeEncodeError):
            canonical(data)
    else:
        assert canonical(data) == expected


@pytest.mark.parametrize("value", [1e16, 2 ** 70, "\x00\x1f\x7f\u2028\"\\/å😀", float("nan"), True])
def test_values_the_two_encoders_write_differently_still_hash_the_same_bytes(value: object) -> None:
    data = {"seq": 1, "details": {"value": value}, "value": value}
    assert canonical(data) == reference_canonical(data)
