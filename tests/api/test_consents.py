"""Recording consent through POST /v1/consents, the way a sign-up form's back end does."""
from __future__ import annotations

import copy
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import SIGNUP, Mailbox, local_path


def signup(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SIGNUP)
    for key, value in changes.items():
        body[key] = value
    return body


def test_signup_records_each_named_purpose(client: FlaskClient, writer: dict[str, str]) -> None:
    r = client.post("/v1/consents", json=SIGNUP, headers=writer)
    assert r.status_code == 201, r.json
    body = r.json
    assert {k: v["status"] for k, v in body["consents"].items()} == {
        "loyalty_club": "granted", "marketing_email": "pending", "profiling": "declined"}
    assert body["consents"]["loyalty_club"]["notice_version"] == "2026-11-01"
    assert body["receipt"]["piiPrincipalId"] == body["subject_id"]


def test_a_later_call_for_the_same_email_updates_the_same_subject(client: FlaskClient, writer: dict[str, str]) -> None:
    first = client.post("/v1/consents", json=SIGNUP, headers=writer).json
    again = signup(subject={"email": "  ANNA@example.SE "}, purposes={"profiling": True})
    second = client.post("/v1/consents", json=again, headers=writer)
    assert second.status_code == 201
    assert second.json["subject_id"] == first["subject_id"]
    assert second.json["consents"]["profiling"]["status"] == "granted"


def test_fields_no_agreed_purpose_needs_are_dropped(client: FlaskClient, writer: dict[str, str],
                                                    officer: dict[str, str]) -> None:
    body = signup(subject={"email": "bo@example.se", "first_name": "Bo", "phone": "070-123 45 67",
                           "postal_code": "11122"},
                  purposes={"marketing_email": True, "sms": False})
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.status_code == 201
    assert r.json["dropped_fields"] == ["phone", "postal_code"]
    found = client.get("/v1/subjects", query_string={"email": "bo@example.se"}, headers=officer).json
    assert found["fields"] == {"email": "bo@example.se", "first_name": "Bo"}


def test_everything_is_dropped_when_every_purpose_is_declined(client: FlaskClient, writer: dict[str, str],
                                                             officer: dict[str, str]) -> None:
    body = signup(purposes={"marketing_email": False, "profiling": False})
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.json["dropped_fields"] == ["birth_date", "country", "email", "first_name"]
    found = client.get("/v1/subjects", query_string={"email": "anna@example.se"}, headers=officer).json
    assert found["fields"] == {}


def test_false_for_a_granted_purpose_is_a_withdrawal(client: FlaskClient, writer: dict[str, str],
                                                     reader: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=signup(purposes={"profiling": True}), headers=writer).json["subject_id"]
    r = client.post("/v1/consents", json=signup(purposes={"profiling": False}), headers=writer)
    assert r.json["consents"]["profiling"]["status"] == "withdrawn"
    history = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert [(e["purpose"], e["status"]) for e in history] == [("profiling", "granted"), ("profiling", "withdrawn")]
    check = client.post("/v1/consents/check", json={"purpose": "profiling", "subject_ids": [sid]}, headers=reader)
    assert check.json == {"purpose": "profiling", "allowed": [], "denied": [sid]}


def test_repeating_the_same_choice_adds_no_ledger_event(client: FlaskClient, writer: dict[str, str],
                                                        reader: dict[str, str]) -> None:
    body = signup(purposes={"profiling": True})
    sid = client.post("/v1/consents", json=body, headers=writer).json["subject_id"]
    client.post("/v1/consents", json=body, headers=writer)
    events = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert len(events) == 1


def test_idempotency_key_replays_the_first_answer(client: FlaskClient, writer: dict[str, str],
                                                  reader: dict[str, str]) -> None:
    headers = {**writer, "Idempotency-Key": "signup-42"}
    first = client.post("/v1/consents", json=SIGNUP, headers=headers)
    second = client.post("/v1/consents", json=SIGNUP, headers=headers)
    assert second.status_code == 201
    assert second.json == first.json
    events = client.get(f"/v1/subjects/{first.json['subject_id']}/consents/history", headers=reader).json["events"]
    assert len(events) == 3


def test_idempotency_key_reused_with_another_body_is_a_conflict(client: FlaskClient, writer: dict[str, str]) -> None:
    headers = {**writer, "Idempotency-Key": "signup-43"}
    client.post("/v1/consents", json=SIGNUP, headers=headers)
    r = client.post("/v1/consents", json=signup(purposes={"sms": True}), headers=headers)
    assert r.status_code == 409
    assert r.json["error"]["code"] == "idempotency_key_reused"


def test_gpc_signal_declines_sharing_purposes_even_when_ticked(client: FlaskClient, writer: dict[str, str]) -> None:
    body = signup(purposes={"targeted_ads": True, "profiling": True})
    r = client.post("/v1/consents", json=body, headers={**writer, "Sec-GPC": "1"})
    assert r.status_code == 201
    assert r.json["consents"]["targeted_ads"]["status"] == "declined"
    assert r.json["consents"]["profiling"]["status"] == "granted"


def test_gpc_signal_withdraws_an_earlier_grant_of_a_sharing_purpose(client: FlaskClient,
                                                                    writer: dict[str, str]) -> None:
    client.post("/v1/consents", json=signup(purposes={"targeted_ads": True}), headers=writer)
    r = client.post("/v1/consents", json=signup(purposes={"loyalty_club": True}), headers={**writer, "Sec-GPC": "1"})
    assert r.json["consents"]["targeted_ads"]["status"] == "withdrawn"


def test_child_below_the_swedish_age_of_consent_is_refused(client: FlaskClient, writer: dict[str, str]) -> None:
    body = signup(subject={"email": "kid@example.se", "country": "SE", "birth_date": "2016-01-01"},
                  purposes={"marketing_email": True})
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.status_code == 422
    assert r.json["error"]["code"] == "below_age_of_consent"
    assert "subject.birth_date" in r.json["error"]["details"]


def test_age_of_consent_depends_on_the_country(client: FlaskClient, writer: dict[str, str]) -> None:
    fourteen = "2012-01-01"
    swede = signup(subject={"email": "a@example.se", "country": "SE", "birth_date": fourteen},
                   purposes={"profiling": True})
    german = signup(subject={"email": "b@example.de", "country": "DE", "birth_date": fourteen},
                    purposes={"profiling": True})
    assert client.post("/v1/consents", json=swede, headers=writer).status_code == 201
    assert client.post("/v1/consents", json=german, headers=writer).status_code == 422


def test_a_child_may_still_join_a_contract_purpose(client: FlaskClient, writer: dict[str, str]) -> None:
    body = signup(subject={"email": "kid@example.se", "country": "SE", "birth_date": "2016-01-01"},
                  purposes={"loyalty_club": True})
    assert client.post("/v1/consents", json=body, headers=writer).status_code == 201


def test_unknown_notice_version_is_refused_and_names_the_field(client: FlaskClient, writer: dict[str, str]) -> None:
    r = client.post("/v1/consents", json=signup(notice_version="2020-01-01"), headers=writer)
    assert r.status_code == 422
    assert "notice_version" in r.json["error"]["details"]


def test_double_opt_in_stays_pending_until_the_mailed_link_is_posted(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str], mailbox: Mailbox) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    check = {"purpose": "marketing_email", "emails": ["anna@example.se"]}
    assert client.post("/v1/consents/check", json=check, headers=reader).json["denied"] == ["anna@example.se"]
    (mail,) = mailbox.to("anna@example.se")
    link = local_path(mailbox.link(mail, "/confirm/"))
    page = client.get(link)  # a mail scanner prefetching the link
    assert page.status_code == 200 and b"<form" in page.data
    assert client.get(f"/v1/subjects/{sid}/consents", headers=reader).json["consents"]["marketing_email"][
        "status"] == "pending"
    assert client.post(link).status_code == 200
    assert client.post("/v1/consents/check", json=check, headers=reader).json["allowed"] == ["anna@example.se"]
    events = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert [e["event"] for e in events if e["purpose"] == "marketing_email"] == ["granted", "confirmed"]
    assert client.post(link).status_code == 410  # single use


def test_every_consent_mail_carries_a_one_click_withdraw_link(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str], mailbox: Mailbox) -> None:
    client.post("/v1/consents", json=SIGNUP, headers=writer)
    (mail,) = mailbox.to("anna@example.se")
    client.post(local_path(mailbox.link(mail, "/confirm/")))
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    r = client.post(local_path(unsubscribe), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    check = {"purpose": "marketing_email", "emails": ["anna@example.se"]}
    assert client.post("/v1/consents/check", json=check, headers=reader).json["denied"] == ["anna@example.se"]


def test_a_forged_withdraw_link_changes_nothing(client: FlaskClient, writer: dict[str, str],
                                                reader: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=signup(purposes={"profiling": True}), headers=writer).json["subject_id"]
    r = client.post("/v1/consents/withdraw", query_string={"subject": sid, "purpose": "profiling", "token": "x" * 27})
    assert r.status_code == 404
    assert client.get(f"/v1/subjects/{sid}/consents", headers=reader).json["consents"]["profiling"][
        "status"] == "granted"


def test_bulk_check_puts_every_input_in_exactly_one_list(client: FlaskClient, writer: dict[str, str],
                                                         reader: dict[str, str]) -> None:
    for name in ("a", "b", "c"):
        body = signup(subject={"email": f"{name}@example.se"}, purposes={"profiling": name != "b"})
        client.post("/v1/consents", json=body, headers=writer)
    emails = ["A@example.se", "b@example.se", "c@example.se", "nobody@example.se", "not an e-mail", "a@example.se"]
    r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": emails}, headers=reader)
    assert r.status_code == 200
    assert r.json["allowed"] == ["A@example.se", "c@example.se", "a@example.se"]
    assert r.json["denied"] == ["b@example.se", "nobody@example.se", "not an e-mail"]


def test_check_of_an_unknown_purpose_is_refused(client: FlaskClient, reader: dict[str, str]) -> None:
    r = client.post("/v1/consents/check", json={"purpose": "telepathy", "emails": ["a@b.se"]}, headers=reader)
    assert r.status_code == 422
    assert "purpose" in r.json["error"]["details"]


def test_subject_consents_show_current_state(client: FlaskClient, writer: dict[str, str],
                                             reader: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    r = client.get(f"/v1/subjects/{sid}/consents", headers=reader)
    assert r.json["subject_id"] == sid
    assert r.json["consents"]["loyalty_club"]["status"] == "granted"
    assert client.get("/v1/subjects/00000000-0000-0000-0000-000000000000/consents", headers=reader).status_code == 404


def test_officer_finds_a_subject_by_email_and_the_lookup_is_audited(
        client: FlaskClient, writer: dict[str, str], officer: dict[str, str], admin: dict[str, str]) -> None:
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).json["subject_id"]
    r = client.get("/v1/subjects", query_string={"email": "Anna@Example.se"}, headers=officer)
    assert r.status_code == 200
    assert r.json["id"] == sid
    assert r.json["fields"]["first_name"] == "Anna"
    assert client.get("/v1/subjects", query_string={"email": "nobody@example.se"}, headers=officer).status_code == 404
    entries = client.get("/v1/audit/log", headers=admin).json["entries"]
    lookups = [e for e in entries if e["action"] == "subject.lookup"]
    assert [(e["target"], e["actor"]) for e in lookups] == [(sid, "key:test-requests:manage")]


def test_scopes_are_enforced(client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    assert client.post("/v1/consents", json=SIGNUP).status_code == 401
    assert client.post("/v1/consents", json=SIGNUP, headers={"Authorization": "Bearer pk_nope"}).status_code == 401
    assert client.post("/v1/consents", json=SIGNUP, headers=reader).status_code == 403
    check = {"purpose": "profiling", "emails": ["a@b.se"]}
    assert client.post("/v1/consents/check", json=check, headers=writer).status_code == 403
    assert client.get("/v1/subjects", query_string={"email": "a@b.se"}, headers=reader).status_code == 403


def test_a_source_url_keeps_no_query_string_in_the_ledger(client: FlaskClient, writer: dict[str, str],
                                                          reader: dict[str, str]) -> None:
    source = {"form": "signup-web", "channel": "web",
              "url": "https://user:pw@shop.example.se:8443/join?email=anna%40example.se#top"}
    sid = client.post("/v1/consents", json=signup(source=source), headers=writer).json["subject_id"]
    events = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert {e["source"]["url"] for e in events} == {"https://shop.example.se:8443/join"}
