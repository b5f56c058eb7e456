"""The one-click withdraw link that marketing automation puts in its own mails (RFC 8058):
GET /v1/subjects/{id}/unsubscribe-link, and the bulk check's include_unsubscribe_link."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from api.services import unit_of_work
from privacy.apikeys import create_key
from privacy.context import utcnow
from privacy.policy.file import DEFAULT_POLICY_FILE
from tests.conftest import PUBLIC_URL, SIGNUP, local_path

ONE_CLICK = {"List-Unsubscribe": "One-Click"}  # the form body a mail client posts (RFC 8058)
UNKNOWN = "00000000-0000-0000-0000-000000000000"


def sign_up(client: FlaskClient, writer: dict[str, str], email: str = "anna@example.se",
            **purposes: bool) -> str:
    body = copy.deepcopy(SIGNUP)
    body["subject"]["email"] = email
    body["purposes"] = purposes or {"profiling": True, "targeted_ads": True}
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.status_code == 201, r.json
    sid: str = r.json["subject_id"]
    return sid


def link_of(client: FlaskClient, reader: dict[str, str], sid: str, purpose: str) -> dict[str, Any]:
    r = client.get(f"/v1/subjects/{sid}/unsubscribe-link", query_string={"purpose": purpose}, headers=reader)
    assert r.status_code == 200, r.json
    body: dict[str, Any] = r.json
    return body


def status(client: FlaskClient, reader: dict[str, str], sid: str, purpose: str) -> str:
    state: str = client.get(f"/v1/subjects/{sid}/consents", headers=reader).json["consents"][purpose]["status"]
    return state


def test_the_link_comes_with_the_two_mail_headers(client: FlaskClient, writer: dict[str, str],
                                                  reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    link = link_of(client, reader, sid, "profiling")
    assert link["url"].startswith(f"{PUBLIC_URL}/v1/consents/withdraw?")
    assert parse_qs(urlsplit(link["url"]).query).keys() == {"subject", "purpose", "token"}
    assert link["list_unsubscribe"] == f"<{link['url']}>"
    assert link["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert (link["subject_id"], link["purpose"]) == (sid, "profiling")


def test_a_one_click_post_of_the_link_withdraws_at_once(client: FlaskClient, writer: dict[str, str],
                                                        reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    url = link_of(client, reader, sid, "profiling")["url"]
    r = client.post(local_path(url), data=ONE_CLICK)
    assert r.status_code == 200
    assert status(client, reader, sid, "profiling") == "withdrawn"
    assert status(client, reader, sid, "targeted_ads") == "granted"
    events = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).json["events"]
    assert events[-1]["purpose"] == "profiling" and events[-1]["source"]["form"] == "withdraw-link"


def test_the_same_link_made_twice_is_the_same_link(client: FlaskClient, writer: dict[str, str],
                                                   reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    assert link_of(client, reader, sid, "profiling") == link_of(client, reader, sid, "profiling")


def test_a_get_of_the_link_shows_a_page_and_changes_nothing(client: FlaskClient, writer: dict[str, str],
                                                            reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    page = client.get(local_path(link_of(client, reader, sid, "profiling")["url"]))
    assert page.status_code == 200 and page.mimetype == "text/html" and b"<form" in page.data
    assert status(client, reader, sid, "profiling") == "granted"


def test_a_tampered_link_is_refused_and_changes_nothing(client: FlaskClient, writer: dict[str, str],
                                                        reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    other = sign_up(client, writer, "erik@example.se")
    url = link_of(client, reader, sid, "profiling")["url"]
    token = parse_qs(urlsplit(url).query)["token"][0]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for query in ({"subject": sid, "purpose": "profiling", "token": flipped},
                  {"subject": other, "purpose": "profiling", "token": token}):
        r = client.post("/v1/consents/withdraw", query_string=query, data=ONE_CLICK)
        assert r.status_code == 404
    assert status(client, reader, sid, "profiling") == "granted"
    assert status(client, reader, other, "profiling") == "granted"


def test_the_link_of_another_purpose_cannot_withdraw_this_one(client: FlaskClient, writer: dict[str, str],
                                                              reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    token = parse_qs(urlsplit(link_of(client, reader, sid, "targeted_ads")["url"]).query)["token"][0]
    r = client.post("/v1/consents/withdraw", query_string={"subject": sid, "purpose": "profiling", "token": token},
                    data=ONE_CLICK)
    assert r.status_code == 404
    assert status(client, reader, sid, "profiling") == "granted"
    assert status(client, reader, sid, "targeted_ads") == "granted"


def test_the_link_needs_a_consent_read_key(client: FlaskClient, writer: dict[str, str],
                                           reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    path = f"/v1/subjects/{sid}/unsubscribe-link?purpose=profiling"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=writer).status_code == 403
    assert client.get(path, headers=reader).status_code == 200


def test_the_link_of_an_unknown_subject_is_404_naming_it(client: FlaskClient, reader: dict[str, str]) -> None:
    for sid in (UNKNOWN, "not-a-uuid"):
        r = client.get(f"/v1/subjects/{sid}/unsubscribe-link", query_string={"purpose": "profiling"}, headers=reader)
        assert r.status_code == 404
        assert sid in r.json["error"]["message"]


def test_a_purpose_not_declared_or_not_given_on_consent_is_422_naming_purpose(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    sid = sign_up(client, writer)
    for purpose in ("telepathy", "loyalty_club"):  # undeclared; a contract, not a consent
        r = client.get(f"/v1/subjects/{sid}/unsubscribe-link", query_string={"purpose": purpose}, headers=reader)
        assert r.status_code == 422, r.json
        assert list(r.json["error"]["details"]) == ["purpose"]
    r = client.get(f"/v1/subjects/{sid}/unsubscribe-link", headers=reader)
    assert r.status_code == 422 and list(r.json["error"]["details"]) == ["purpose"]


# --- the bulk check -----------------------------------------------------------------------

def test_the_bulk_check_without_the_flag_answers_as_before(client: FlaskClient, writer: dict[str, str],
                                                           reader: dict[str, str]) -> None:
    sign_up(client, writer)
    body = {"purpose": "profiling", "emails": ["anna@example.se", "nobody@example.se"]}
    plain = client.post("/v1/consents/check", json=body, headers=reader)
    unflagged = client.post("/v1/consents/check", json={**body, "include_unsubscribe_link": False}, headers=reader)
    assert plain.json == {"purpose": "profiling", "allowed": ["anna@example.se"], "denied": ["nobody@example.se"]}
    assert unflagged.get_data() == plain.get_data()


def test_the_bulk_check_with_the_flag_gives_each_allowed_address_its_link(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    anna = sign_up(client, writer)
    erik = sign_up(client, writer, "erik@example.se")
    sign_up(client, writer, "bo@example.se", profiling=False)
    emails = ["anna@example.se", "ERIK@example.se", "bo@example.se", "nobody@example.se"]
    r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": emails,
                                                "include_unsubscribe_link": True}, headers=reader)
    assert r.status_code == 200
    assert r.json["allowed"] == ["anna@example.se", "ERIK@example.se"]
    assert r.json["denied"] == ["bo@example.se", "nobody@example.se"]
    links = r.json["unsubscribe_links"]
    assert links == {"anna@example.se": link_of(client, reader, anna, "profiling")["url"],
                     "ERIK@example.se": link_of(client, reader, erik, "profiling")["url"]}
    assert client.post(local_path(links["ERIK@example.se"]), data=ONE_CLICK).status_code == 200
    assert status(client, reader, erik, "profiling") == "withdrawn"
    assert status(client, reader, anna, "profiling") == "granted"


def test_the_bulk_check_by_subject_id_with_the_flag_gives_the_links_too(
        client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    anna = sign_up(client, writer)
    r = client.post("/v1/consents/check", json={"purpose": "targeted_ads", "subject_ids": [anna, UNKNOWN],
                                                "include_unsubscribe_link": True}, headers=reader)
    assert r.json["allowed"] == [anna] and r.json["denied"] == [UNKNOWN]
    assert r.json["unsubscribe_links"] == {anna: link_of(client, reader, anna, "targeted_ads")["url"]}


def test_the_flag_must_be_a_json_boolean(client: FlaskClient, reader: dict[str, str]) -> None:
    r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": ["a@b.se"],
                                                "include_unsubscribe_link": "yes"}, headers=reader)
    assert r.status_code == 422
    assert list(r.json["error"]["details"]) == ["include_unsubscribe_link"]


def test_the_flag_for_a_purpose_not_given_on_consent_is_422_naming_purpose(
        client: FlaskClient, reader: dict[str, str]) -> None:
    r = client.post("/v1/consents/check", json={"purpose": "loyalty_club", "emails": ["a@b.se"],
                                                "include_unsubscribe_link": True}, headers=reader)
    assert r.status_code == 422
    assert list(r.json["error"]["details"]) == ["purpose"]


# --- fan-out ------------------------------------------------------------------------------

def test_a_withdrawal_by_the_link_plans_a_consent_task_for_a_webhook_system(
        make_app: Callable[..., Flask], tmp_path: Any) -> None:
    from sqlalchemy import select

    from api.db import db
    from api.services import current
    from privacy.storage.models import RequestTask
    from privacy.storage.repositories.tasks import TaskRepository
    from privacy.tasks.planning import open_call

    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text().replace("connectors: []", """connectors:
  - name: esp
    type: webhook
    url: https://esp.example.se/privacy
    secret_env: ESP_SECRET
    operations: [consent]
"""))
    app = make_app(POLICY_FILE=str(policy))
    client = app.test_client()
    with app.app_context(), unit_of_work() as session:
        _, write_token = create_key(session, "form", ["consent:write"], "test", utcnow())
        _, read_token = create_key(session, "esp", ["consent:read"], "test", utcnow())
    writer, reader = ({"Authorization": f"Bearer {t}"} for t in (write_token, read_token))
    sid = sign_up(client, writer)
    with app.app_context():
        assert db.session.scalars(select(RequestTask)).all() == []
    url = link_of(client, reader, sid, "profiling")["url"]
    assert client.post(local_path(url), data=ONE_CLICK).status_code == 200
    with app.app_context():
        tasks = db.session.scalars(select(RequestTask)).all()
        assert [(t.system, t.operation, t.subject_id, t.status) for t in tasks] == [
            ("esp", "consent", sid, "pending")]
        task = TaskRepository(db.session).get(tasks[0].id)
        assert task is not None
        call = open_call(current().crypto, task)
        assert (call.email, call.purposes) == ("anna@example.se", {"profiling": "withdrawn"})
