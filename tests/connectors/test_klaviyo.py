"""The Klaviyo connector against a Prism mock of Klaviyo's description (revision 2026-07-15)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from privacy.connectors.base import ConfigError, ConnectorError, TaskCall
from privacy.connectors.klaviyo import KlaviyoConnector, email_filter
from privacy.connectors.registry import build
from privacy.policy.file import ConnectorDef
from tests.connectors.prism import Recorder, prefer, record

EMAIL = "anna@example.se"
ENV = {"KLAVIYO_API_KEY": "pk_test"}
PROFILES = ("GET", "/api/profiles")
PROFILE_ID = "01GDDKASAP8TKDDA2GRZDSVP4H"


def definition(**settings: Any) -> ConnectorDef:
    return ConnectorDef(name="klaviyo", type="klaviyo", retry={}, timeout_s=10,
                        operations=("access", "erasure", "rectification", "consent"),
                        settings={"api_key_env": "KLAVIYO_API_KEY", **settings})


@pytest.fixture
def klaviyo(klaviyo_url: str) -> tuple[KlaviyoConnector, Recorder]:
    connector = build(definition(base_url=klaviyo_url), ENV)
    assert isinstance(connector, KlaviyoConnector)
    return connector, record(connector.http.session)


def call(operation: str, **kwargs: Any) -> TaskCall:
    return TaskCall(id="task-1", operation=operation, email=EMAIL, **kwargs)


def test_the_email_filter_escapes_quotes_and_backslashes() -> None:
    assert email_filter('a"b\\c@example.se') == 'equals(email,"a\\"b\\\\c@example.se")'


def test_access_answers_the_profile_found_by_email(klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    result = connector.run(call("access"))
    assert result.outcome == "done"
    assert result.data is not None and result.data["profiles"][0]["id"] == PROFILE_ID
    assert seen.shapes() == [PROFILES]
    headers = seen.seen[0].headers
    assert (headers["Authorization"], headers["revision"]) == ("Klaviyo-API-Key pk_test", "2026-07-15")
    assert seen.violations() == []


def test_access_of_a_person_klaviyo_does_not_hold_is_not_found(klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, _ = klaviyo
    prefer(connector.http.session, connector.base_url, "example=no-match")
    result = connector.run(call("access"))
    assert (result.outcome, result.data) == ("not_found", {})


def test_erasure_requests_a_deletion_job_by_profile_id_and_is_only_accepted(
        klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    result = connector.run(call("erasure"))
    assert result.outcome == "accepted"
    assert seen.shapes() == [PROFILES, ("POST", "/api/data-privacy-deletion-jobs")]
    body = json.loads(seen.seen[1].body or b"{}")
    assert body["data"]["attributes"]["profile"]["data"]["id"] == PROFILE_ID
    assert seen.seen[1].headers["Content-Type"] == "application/vnd.api+json"
    assert seen.violations() == []


def test_erasure_of_a_person_klaviyo_does_not_hold_is_not_found_without_a_job(
        klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    prefer(connector.http.session, connector.base_url, "example=no-match")
    assert connector.run(call("erasure")).outcome == "not_found"
    assert seen.shapes() == [PROFILES]


def test_consent_withdrawal_sends_an_unsubscribe_job(klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    assert connector.run(call("consent", purposes={"marketing_email": "withdrawn"})).outcome == "accepted"
    assert seen.shapes() == [PROFILES, ("POST", "/api/profile-subscription-bulk-delete-jobs")]
    profile = json.loads(seen.seen[1].body or b"{}")["data"]["attributes"]["profiles"]["data"][0]
    assert profile["attributes"]["subscriptions"] == {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    assert seen.violations() == []


def test_consent_for_a_person_klaviyo_does_not_hold_creates_no_profile(
        klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    prefer(connector.http.session, connector.base_url, "example=no-match")
    assert connector.run(call("consent", purposes={"marketing_email": "withdrawn"})).outcome == "not_found"
    assert seen.shapes() == [PROFILES]


def test_rectification_patches_mapped_attributes_nested_where_named(
        klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    result = connector.run(call("rectification", changes={"last_name": "Berg", "postal_code": "11122",
                                                          "birth_date": "1990-04-01"}))
    assert result.outcome == "done"
    assert seen.shapes() == [PROFILES, ("PATCH", f"/api/profiles/{PROFILE_ID}")]
    assert json.loads(seen.seen[1].body or b"{}") == {"data": {"type": "profile", "id": PROFILE_ID, "attributes": {
        "last_name": "Berg", "location": {"zip": "11122"}}}}
    assert seen.violations() == []


def test_opt_in_reads_the_marketing_email_consent(klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    assert connector.opt_in(EMAIL) is True
    assert seen.violations() == []
    prefer(connector.http.session, connector.base_url, "example=no-match")
    assert connector.opt_in(EMAIL) is None


def test_test_connection_reads_the_account(klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, seen = klaviyo
    assert "KLAVIYO_API_KEY" in connector.test_connection()
    assert seen.shapes() == [("GET", "/api/accounts")]
    assert seen.violations() == []


def test_a_400_fails_at_once_with_an_excerpt_that_holds_no_email(klaviyo: tuple[KlaviyoConnector, Recorder]) -> None:
    connector, _ = klaviyo
    prefer(connector.http.session, connector.base_url, "code=400")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("erasure"))
    assert (caught.value.retryable, caught.value.http_status) == (False, 400)
    assert "@" not in caught.value.reason and "@" not in caught.value.excerpt


@pytest.mark.parametrize("status", [429, 500])
def test_429_and_5xx_are_retryable(klaviyo: tuple[KlaviyoConnector, Recorder], status: int) -> None:
    connector, _ = klaviyo
    prefer(connector.http.session, connector.base_url, f"code={status}")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert (caught.value.retryable, caught.value.http_status) == (True, status)


def test_a_missing_key_variable_fails_without_retry_naming_it(klaviyo_url: str) -> None:
    connector = build(definition(base_url=klaviyo_url), {})
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert caught.value.retryable is False
    assert "KLAVIYO_API_KEY" in caught.value.reason


@pytest.mark.parametrize(("settings", "key"), [
    ({"api_key_env": None}, "connectors[klaviyo].api_key_env"),
    ({"base_url": "a.klaviyo.com"}, "connectors[klaviyo].base_url"),
    ({"fields": ["email"]}, "connectors[klaviyo].fields"),
])
def test_a_bad_setting_is_a_config_error_naming_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        build(definition(**settings), ENV)
