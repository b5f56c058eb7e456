"""Retention rules enforced: each clock and action, holds, minimisation, erasure tasks."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.retention.sweeping import audits, exists, field_names, policy_with, rows, sign_up, sweep

ANNA = "anna@example.se"
MEMBER = {"first_name": "Anna", "last_name": "Berg", "birth_date": "1990-04-01", "country": "SE",
          "postal_code": "11122"}


def test_a_member_inactive_past_two_years_is_anonymised_and_unlinkable(
        app: Flask, client: FlaskClient, writer: dict[str, str], officer: dict[str, str]) -> None:
    sid = sign_up(client, writer, ANNA, {"loyalty_club": True}, **MEMBER)
    assert sweep(app, days=729)["subjects"] == {"deleted": 0, "anonymised": 0}
    assert exists(app, sid)
    summary = sweep(app, days=731)
    assert summary["subjects"] == {"deleted": 0, "anonymised": 1}
    assert not exists(app, sid)
    record = rows(app, "SELECT * FROM anonymised_records")
    assert len(record) == 1
    assert (record[0].birth_year, record[0].postal_prefix, record[0].country, record[0].rule) == (
        1990, "111", "SE", "loyalty_club")
    assert "anna" not in str(tuple(record[0])).lower() and "berg" not in str(tuple(record[0])).lower()
    assert client.get(f"/v1/subjects?email={ANNA}", headers=officer).status_code == 404
    assert rows(app, "SELECT * FROM consent_states WHERE subject_id = :s", s=sid) == []
    # the bookkeeping hold keeps its fields, sealed under the hold's key, as an erasure does
    held = {r.name for r in rows(app, "SELECT name FROM held_fields WHERE subject_id = :s", s=sid)}
    assert held == {"first_name", "last_name", "postal_code"}
    counts = summary["counts"]["loyalty_club"]
    assert counts["contact"]["anonymise"] == 1 and counts["identity"]["anonymise"] == 1  # email; birth_date


def test_a_withdrawn_consent_alone_is_deleted_thirty_days_after_withdrawal(
        app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    sid = sign_up(client, writer, ANNA, {"sms": True}, phone="+46701234567", first_name="Anna")
    sign_up(client, writer, ANNA, {"sms": False})
    assert sweep(app, days=29)["subjects"]["deleted"] == 0
    summary = sweep(app, days=31)
    assert summary["subjects"] == {"deleted": 1, "anonymised": 0}
    assert not exists(app, sid)
    assert rows(app, "SELECT * FROM anonymised_records") == []
    assert rows(app, "SELECT seq FROM consent_events WHERE subject_id = :s", s=sid)  # the ledger keeps its events
    assert summary["counts"]["sms"]["contact"]["delete"] == 1 and summary["fields_removed"] == 2


def test_a_member_keeps_what_the_club_needs_and_loses_what_only_sms_needed(
        app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    sid = sign_up(client, writer, ANNA, {"loyalty_club": True, "sms": True}, phone="+46701234567", **MEMBER)
    sign_up(client, writer, ANNA, {"sms": False})
    summary = sweep(app, days=31)
    assert summary["subjects"] == {"deleted": 0, "anonymised": 0}
    assert field_names(app, sid) == {"email", "first_name", "last_name", "birth_date", "country", "postal_code"}
    assert summary["counts"] == {"sms": {"contact": {"delete": 0, "anonymise": 0, "minimise": 1}}}


def test_a_withdrawn_marketing_consent_loses_first_name_unless_the_club_needs_it(
        app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    other = sign_up(client, writer, "bo@example.se", {"marketing_email": True, "profiling": True},
                    first_name="Bo", birth_date="1980-01-01")
    member = sign_up(client, writer, ANNA, {"marketing_email": True, "loyalty_club": True}, first_name="Anna")
    for email in ("bo@example.se", ANNA):
        sign_up(client, writer, email, {"marketing_email": False})
    sweep(app, days=31)
    assert field_names(app, other) == {"email", "birth_date"}  # profiling needs no first name
    assert field_names(app, member) == {"email", "first_name"}


def test_collection_and_consent_expiry_clocks(make_app: Any, tmp_path: Path) -> None:
    import datetime as dt

    from api.services import current, unit_of_work
    from privacy.apikeys import create_key
    from privacy.context import utcnow
    from retention.jobs import expire_consents

    policy = policy_with(
        tmp_path,
        ("""    fields: [email, birth_date, postal_code]
    consent_valid_days: 730
    notice:""", """    fields: [email, birth_date, postal_code]
    consent_valid_days: 730
    retention: {period_days: 10, after: collection, action: delete}
    notice:"""),
        ("""      text: We send you offers by SMS. Reply STOP or use the link to withdraw.
    retention: {period_days: 30, after: withdrawal, action: delete}""",
         """      text: We send you offers by SMS. Reply STOP or use the link to withdraw.
    retention: {period_days: 5, after: consent_expiry, action: anonymise}"""))
    policy_text = Path(policy).read_text().replace(
        "    retention: {period_days: 30, after: withdrawal, action: delete}\n\n  # Targeted",
        "\n  # Targeted")  # profiling had its own rule already
    Path(policy).write_text(policy_text)
    app = make_app(POLICY_FILE=policy)
    client = app.test_client()
    with app.app_context(), unit_of_work() as session:
        _, token = create_key(session, "form", ["consent:write"], "test", utcnow())
    writer = {"Authorization": f"Bearer {token}"}
    profiled = sign_up(client, writer, ANNA, {"profiling": True}, birth_date="1990-04-01")
    texted = sign_up(client, writer, "bo@example.se", {"sms": True}, phone="+46701234567", country="SE")
    assert sweep(app, days=9)["subjects"]["deleted"] == 0
    assert sweep(app, days=11)["subjects"] == {"deleted": 1, "anonymised": 0}
    assert not exists(app, profiled) and exists(app, texted)
    with app.app_context():
        assert expire_consents(current(), utcnow() + dt.timedelta(days=731)) == 1
    assert sweep(app, days=735)["subjects"]["anonymised"] == 0
    assert sweep(app, days=737)["subjects"]["anonymised"] == 1
    record = rows(app, "SELECT country, rule, purposes FROM anonymised_records")[0]
    assert record.country is None and record.rule == "sms"  # sms never stored the country
    assert '"purpose": "sms"' in record.purposes


def test_a_connected_system_holding_the_purpose_gets_an_erasure_task(make_app: Any, tmp_path: Path) -> None:
    from api.services import unit_of_work
    from privacy.apikeys import create_key
    from privacy.context import utcnow

    policy = policy_with(tmp_path, ("connectors: []", """connectors:
  - name: crm
    type: webhook
    url: https://crm.example.se/privacy
    secret_env: CRM_SECRET
    operations: [access, erasure]
    purposes: [sms]
  - name: shop
    type: webhook
    url: https://shop.example.se/privacy
    secret_env: SHOP_SECRET
    operations: [erasure]
    purposes: [loyalty_club]
"""))
    app = make_app(POLICY_FILE=policy)
    client = app.test_client()
    with app.app_context(), unit_of_work() as session:
        _, token = create_key(session, "form", ["consent:write"], "test", utcnow())
    writer = {"Authorization": f"Bearer {token}"}
    sid = sign_up(client, writer, ANNA, {"sms": True}, phone="+46701234567")
    sign_up(client, writer, ANNA, {"sms": False})
    summary = sweep(app, days=31)
    assert summary["tasks_planned"] == 1
    tasks = rows(app, "SELECT system, operation FROM request_tasks WHERE subject_id = :s", s=sid)
    assert [tuple(t) for t in tasks] == [("crm", "erasure")]


def test_a_dry_run_changes_nothing_and_lists_what_would_go(
        app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    sid = sign_up(client, writer, ANNA, {"sms": True}, phone="+46701234567", first_name="Anna")
    sign_up(client, writer, ANNA, {"sms": False})
    before = field_names(app, sid)
    assert sweep(app, days=1, dry_run=True)["would_go"] == []
    summary = sweep(app, days=31, dry_run=True)  # as_of in the future: what goes by then
    assert summary["would_go"] == [{"subject_id": sid, "purpose": "sms", "action": "delete",
                                    "fields": ["first_name", "phone"]}]
    assert summary["would_go_total"] == 1 and summary["subjects"]["deleted"] == 1
    assert exists(app, sid) and field_names(app, sid) == before
    assert audits(app) == []
    assert [r.dry_run for r in rows(app, "SELECT dry_run FROM retention_runs")] == [True, True]


def test_a_crashed_run_is_resumed_and_nothing_is_done_twice(
        app: Flask, client: FlaskClient, writer: dict[str, str], monkeypatch: Any) -> None:
    from privacy.storage.repositories.subjects import SubjectRepository

    ids = []
    for i in range(4):
        email = f"p{i}@example.se"
        ids.append(sign_up(client, writer, email, {"sms": True}, phone=f"+4670123456{i}"))
        sign_up(client, writer, email, {"sms": False})
    original = SubjectRepository.erase_many  # the power cuts in the middle of the second batch's writes
    calls = {"n": 0}

    def crash_on_second(self: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        original(self, *args, **kwargs)

    monkeypatch.setattr(SubjectRepository, "erase_many", crash_on_second)
    try:
        sweep(app, days=31, batch_size=1)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the sweep should have crashed")
    assert sum(exists(app, s) for s in ids) == 3
    monkeypatch.setattr(SubjectRepository, "erase_many", original)
    summary = sweep(app, days=31, batch_size=1)
    assert summary["subjects"]["deleted"] == 4  # the resumed run's counts include the first batch
    assert not any(exists(app, s) for s in ids)
    entries = audits(app)
    assert len(entries) == 1 and entries[0]["subjects"] == {"deleted": 4, "anonymised": 0}
    assert set(entries[0]) == {"run", "as_of", "dry_run", "counts", "subjects", "fields_removed", "tasks_planned"}
    assert sweep(app, days=31)["subjects"]["deleted"] == 0  # nothing left to do
    statuses = [r.status for r in rows(app, "SELECT status FROM retention_runs")]
    assert statuses == ["done", "done"]


def test_should_stop_leaves_the_run_resumable(app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    for i in range(3):
        sign_up(client, writer, f"p{i}@example.se", {"sms": True}, phone=f"+4670123456{i}")
        sign_up(client, writer, f"p{i}@example.se", {"sms": False})
    seen = iter([False, True])
    first = sweep(app, days=31, batch_size=1, should_stop=lambda: next(seen))
    assert first["stopped"] and first["subjects"]["deleted"] == 1 and audits(app) == []
    assert sweep(app, days=31, batch_size=1)["subjects"]["deleted"] == 3


def test_a_sweep_as_of_the_first_years_fires_nothing(app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    import datetime as dt

    from api.services import current
    from privacy.retention.sweep import RetentionService

    sid = sign_up(client, writer, ANNA, {"loyalty_club": True}, **MEMBER)
    with app.app_context():
        summary = RetentionService(current()).run(dt.datetime(1, 1, 2, tzinfo=dt.UTC), True, "test")
    assert summary["would_go"] == [] and exists(app, sid)


def test_a_field_no_purpose_lists_any_more_goes_and_needed_fields_stay(
        app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    from api.db import db

    sid = sign_up(client, writer, ANNA, {"loyalty_club": True}, **MEMBER)
    other = sign_up(client, writer, "bo@example.se", {"loyalty_club": True}, **MEMBER)
    with app.app_context():  # left over from an older policy that listed it
        db.session.execute(text("INSERT INTO subject_fields (subject_id, name, ciphertext, updated_at) "
                                "VALUES (:s, 'shoe_size', :c, :t)"),
                           {"s": sid, "c": b"x", "t": dt.datetime.now(dt.UTC)})
        db.session.commit()
    before = rows(app, "SELECT updated_at FROM subjects WHERE id = :s", s=other)
    summary = sweep(app, days=1)
    assert summary["fields_removed"] == 1
    assert summary["counts"] == {"(none)": {"other": {"delete": 0, "anonymise": 0, "minimise": 1}}}
    assert field_names(app, sid) == set(MEMBER) | {"email"}
    assert field_names(app, other) == set(MEMBER) | {"email"}
    assert rows(app, "SELECT updated_at FROM subjects WHERE id = :s", s=other) == before
