"""The Mailchimp connector against a Prism mock of the Marketing API 3.0 description."""
from __future__ import annotations

import json
from typing import Any

import pytest

from privacy.connectors.base import ConfigError, ConnectorError, TaskCall
from privacy.connectors.mailchimp import MailchimpConnector, subscriber_hash
from privacy.connectors.registry import build
from privacy.policy.file import ConnectorDef
from tests.connectors.prism import Recorder, prefer, record

EMAIL = "Anna@Example.se"
ENV = {"MAILCHIMP_API_KEY": "0123456789abcdef-us21"}
HASH = subscriber_hash(EMAIL)
A, B = "/lists/aud1/members/" + HASH, "/lists/aud2/members/" + HASH


def definition(**settings: Any) -> ConnectorDef:
    return ConnectorDef(name="mailchimp", type="mailchimp", retry={}, timeout_s=10,
                        operations=("access", "erasure", "rectification", "consent"),
                        settings={"api_key_env": "MAILCHIMP_API_KEY", "audiences": ["aud1", "aud2"], **settings})


@pytest.fixture
def mailchimp(mailchimp_url: str) -> tuple[MailchimpConnector, Recorder]:
    connector = build(definition(base_url=mailchimp_url), ENV)
    assert isinstance(connector, MailchimpConnector)
    return connector, record(connector.http.session)


def call(operation: str, **kwargs: Any) -> TaskCall:
    return TaskCall(id="task-1", operation=operation, email=EMAIL, **kwargs)


def test_the_subscriber_hash_is_the_md5_of_the_lower_cased_address() -> None:
    assert HASH == subscriber_hash("anna@example.se") == "3aff50ed9f5efec65b50907a4d924054"


def test_access_reads_the_member_in_every_audience(mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, seen = mailchimp
    result = connector.run(call("access"))
    assert result.outcome == "done"
    assert result.data is not None and sorted(result.data["audiences"]) == ["aud1", "aud2"]
    assert "_links" not in result.data["audiences"]["aud1"]
    assert seen.shapes() == [("GET", A), ("GET", B)]
    assert seen.seen[0].headers["Authorization"].startswith("Basic ")
    assert seen.violations() == []


def test_access_of_a_person_in_no_audience_is_not_found(mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, _ = mailchimp
    prefer(connector.http.session, connector.api_url(), "code=404")
    result = connector.run(call("access"))
    assert (result.outcome, result.data) == ("not_found", {})


def test_erasure_deletes_permanently_in_every_audience(mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, seen = mailchimp
    assert connector.run(call("erasure")).outcome == "done"
    assert seen.shapes() == [("GET", A), ("GET", B), ("POST", A + "/actions/delete-permanent"),
                             ("POST", B + "/actions/delete-permanent")]
    assert seen.violations() == []


def test_erasure_of_a_person_in_no_audience_is_not_found_without_deleting(
        mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, seen = mailchimp
    prefer(connector.http.session, connector.api_url(), "code=404")
    assert connector.run(call("erasure")).outcome == "not_found"
    assert seen.shapes() == [("GET", A), ("GET", B)]


def test_consent_withdrawal_unsubscribes_and_turns_marketing_permissions_off(
        mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, seen = mailchimp
    assert connector.run(call("consent", purposes={"marketing_email": "withdrawn"})).outcome == "done"
    assert seen.shapes() == [("GET", A), ("GET", B), ("PATCH", A), ("PATCH", B)]
    assert json.loads(seen.seen[2].body or b"{}") == {
        "status": "unsubscribed", "marketing_permissions": [{"marketing_permission_id": "string", "enabled": False}]}
    assert seen.violations() == []


def test_rectification_patches_merge_fields_and_the_address(mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, seen = mailchimp
    result = connector.run(call("rectification", changes={"first_name": "Ann", "email": "ann@example.se",
                                                          "birth_date": "1990-04-01"}))
    assert result.outcome == "done"
    assert seen.shapes()[2:] == [("PATCH", A), ("PATCH", B)]
    assert json.loads(seen.seen[2].body or b"{}") == {"email_address": "ann@example.se",
                                                       "merge_fields": {"FNAME": "Ann"}}
    assert seen.violations() == []


def test_opt_in_is_whether_any_audience_has_the_member_subscribed(
        mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, _ = mailchimp
    assert connector.opt_in(EMAIL) is True
    prefer(connector.http.session, connector.api_url(), "code=404")
    assert connector.opt_in(EMAIL) is None


def test_test_connection_pings(mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, seen = mailchimp
    assert "MAILCHIMP_API_KEY" in connector.test_connection()
    assert seen.shapes() == [("GET", "/ping")]
    assert seen.violations() == []


def test_a_400_fails_at_once_with_an_excerpt_that_holds_no_email(
        mailchimp: tuple[MailchimpConnector, Recorder]) -> None:
    connector, _ = mailchimp
    prefer(connector.http.session, connector.api_url(), "code=400")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("erasure"))
    assert (caught.value.retryable, caught.value.http_status) == (False, 400)
    assert "@" not in caught.value.reason and "@" not in caught.value.excerpt


@pytest.mark.parametrize("status", [429, 500])
def test_429_and_5xx_are_retryable(mailchimp: tuple[MailchimpConnector, Recorder], status: int) -> None:
    connector, _ = mailchimp
    prefer(connector.http.session, connector.api_url(), f"code={status}")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert (caught.value.retryable, caught.value.http_status) == (True, status)


def test_the_api_url_defaults_to_the_key_data_centre() -> None:
    connector = build(definition(), ENV)
    assert isinstance(connector, MailchimpConnector)
    assert connector.api_url() == "https://us21.api.mailchimp.com/3.0"


def test_a_key_without_a_data_centre_and_no_base_url_fails_without_retry() -> None:
    connector = build(definition(), {"MAILCHIMP_API_KEY": "nodatacentre"})
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert caught.value.retryable is False
    assert "MAILCHIMP_API_KEY" in caught.value.reason and "nodatacentre" not in caught.value.reason


def test_a_missing_key_variable_fails_without_retry_naming_it(mailchimp_url: str) -> None:
    connector = build(definition(base_url=mailchimp_url), {})
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert caught.value.retryable is False
    assert "MAILCHIMP_API_KEY" in caught.value.reason


@pytest.mark.parametrize(("settings", "key"), [
    ({"audiences": None}, "connectors[mailchimp].audiences"),
    ({"audiences": []}, "connectors[mailchimp].audiences"),
    ({"audiences": "aud1"}, "connectors[mailchimp].audiences"),
    ({"api_key_env": ""}, "connectors[mailchimp].api_key_env"),
    ({"base_url": "us21.api.mailchimp.com"}, "connectors[mailchimp].base_url"),
])
def test_a_bad_setting_is_a_config_error_naming_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        build(definition(**settings), ENV)
