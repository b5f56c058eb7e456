"""The one-click withdraw link for another system's mails, without HTTP: what the service
makes, what it refuses, and that the bulk check's links cost no query per address."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from privacy.consent import unsubscribe
from privacy.consent.mail import withdraw_url
from privacy.consent.service import ConsentCommand, ConsentService
from privacy.context import PrivacyContext, utcnow
from privacy.errors import InvalidInput, NotFound
from tests.conftest import SIGNUP
from tests.consent.test_bulk_check import count_queries

SOURCE = {"form": "signup-web", "channel": "web"}


def _sign_up(ctx: PrivacyContext, email: str = "anna@example.se", **purposes: bool) -> str:
    cmd = ConsentCommand(purposes=purposes or {"profiling": True}, source=SOURCE,
                         subject={**SIGNUP["subject"], "email": email}, notice_version=SIGNUP["notice_version"])
    sid: str = ConsentService(ctx).record(cmd, utcnow()).body["subject_id"]
    return sid


def test_the_link_is_the_one_the_opt_in_mail_carries(ctx: PrivacyContext) -> None:
    sid = _sign_up(ctx)
    link = ConsentService(ctx).unsubscribe_link(sid, "profiling")
    assert link["url"] == withdraw_url(ctx, sid, "profiling")
    assert unsubscribe.mail_headers(link["url"]) == {"List-Unsubscribe": link["list_unsubscribe"],
                                                     "List-Unsubscribe-Post": link["list_unsubscribe_post"]}


def test_the_link_carries_a_mac_of_the_subject_and_the_purpose(ctx: PrivacyContext) -> None:
    sid = _sign_up(ctx)
    query = parse_qs(urlsplit(ConsentService(ctx).unsubscribe_link(sid, "profiling")["url"]).query)
    assert query["subject"] == [sid] and query["purpose"] == ["profiling"]
    assert ctx.crypto.check_link_token(query["token"][0], "withdraw", sid, "profiling")
    assert not ctx.crypto.check_link_token(query["token"][0], "withdraw", sid, "targeted_ads")


def test_the_link_withdraws_through_withdraw_by_link(ctx: PrivacyContext) -> None:
    sid = _sign_up(ctx)
    service = ConsentService(ctx)
    token = parse_qs(urlsplit(service.unsubscribe_link(sid, "profiling")["url"]).query)["token"][0]
    assert service.withdraw_by_link(sid, "profiling", token, utcnow())["status"] == "withdrawn"


@pytest.mark.parametrize("sid", ["00000000-0000-0000-0000-000000000000", "anna"])
def test_an_unknown_subject_has_no_link(ctx: PrivacyContext, sid: str) -> None:
    with pytest.raises(NotFound):
        ConsentService(ctx).unsubscribe_link(sid, "profiling")


@pytest.mark.parametrize("purpose", ["telepathy", "loyalty_club"])
def test_a_purpose_not_declared_or_not_given_on_consent_has_no_link(ctx: PrivacyContext, purpose: str) -> None:
    sid = _sign_up(ctx)
    with pytest.raises(InvalidInput) as refused:
        ConsentService(ctx).unsubscribe_link(sid, purpose)
    assert list(refused.value.details) == ["purpose"]


def test_the_bulk_check_makes_its_links_in_the_same_single_query(
        app: Flask, client: FlaskClient, writer: dict[str, str], reader: dict[str, str]) -> None:
    emails = [f"member{i}@example.se" for i in range(5)]
    for email in emails:
        body = {**SIGNUP, "subject": {"email": email}, "purposes": {"profiling": True}}
        assert client.post("/v1/consents", json=body, headers=writer).status_code == 201
    queries = {}
    client.post("/v1/consents/check", json={"purpose": "profiling", "emails": emails}, headers=reader)  # warm caches
    for flag in (False, True):
        with count_queries(app) as seen:
            r = client.post("/v1/consents/check", json={"purpose": "profiling", "emails": [*emails, "x@example.se"],
                                                        "include_unsubscribe_link": flag}, headers=reader)
        assert r.status_code == 200 and r.json["allowed"] == emails
        queries[flag] = seen
    assert len(r.json["unsubscribe_links"]) == 5
    assert len(queries[True]) == len(queries[False])
    assert len([q for q in queries[True] if "consent_states" in q]) == 1


def test_an_erased_subject_has_no_link(ctx: PrivacyContext) -> None:
    from privacy.storage.repositories.subjects import SubjectRepository

    sid = _sign_up(ctx)
    with ctx.database.unit_of_work() as session:
        SubjectRepository(session).shred(sid, utcnow())  # erased: its key is gone, its id stays
    with pytest.raises(NotFound):
        ConsentService(ctx).unsubscribe_link(sid, "profiling")
