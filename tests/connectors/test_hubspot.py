"""The HubSpot connector against Prism mocks of HubSpot's own descriptions (contacts v3 and
communication preferences v4, two servers: ``preferences_base_url`` points at the second)."""
from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from privacy.connectors.base import ConfigError, ConnectorError, TaskCall
from privacy.connectors.hubspot import DAILY_LIMIT_RETRY_S, HubSpotConnector, rate_limit_error
from privacy.connectors.registry import build
from privacy.policy.file import ConnectorDef
from tests.connectors.prism import Recorder, prefer, record

EMAIL = "anna@example.se"
ENV = {"HUBSPOT_TOKEN": "pat-eu1-test"}
SEARCH = ("POST", "/crm/v3/objects/contacts/search")
UNSUBSCRIBE_ALL = f"/communication-preferences/v4/statuses/{EMAIL.replace('@', '%40')}/unsubscribe-all"


def definition(**settings: Any) -> ConnectorDef:
    return ConnectorDef(name="hubspot", type="hubspot", operations=("access", "erasure", "rectification", "consent"),
                        retry={}, timeout_s=10, settings={"token_env": "HUBSPOT_TOKEN", **settings})


@pytest.fixture
def hubspot(hubspot_crm_url: str, hubspot_preferences_url: str) -> tuple[HubSpotConnector, Recorder]:
    connector = build(definition(base_url=hubspot_crm_url, preferences_base_url=hubspot_preferences_url), ENV)
    assert isinstance(connector, HubSpotConnector)
    return connector, record(connector.http.session)


def call(operation: str, **kwargs: Any) -> TaskCall:
    return TaskCall(id="task-1", operation=operation, email=EMAIL, **kwargs)


def assert_valid(recorder: Recorder) -> None:
    assert recorder.violations() == []


def test_access_answers_the_contact_found_by_email_search(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    result = connector.run(call("access"))
    assert result.outcome == "done"
    assert result.data == {"contacts": [{"id": "512", "createdAt": "2026-12-01T10:00:00Z",
                                         "updatedAt": "2026-12-01T10:00:00Z",
                                         "properties": {"email": EMAIL, "firstname": "Anna", "lastname": "Andersson"}}]}
    assert seen.shapes() == [SEARCH]
    body = json.loads(seen.seen[0].body or b"{}")
    assert body["filterGroups"] == [{"filters": [{"propertyName": "email", "operator": "EQ", "value": EMAIL}]}]
    assert seen.seen[0].headers["Authorization"] == "Bearer pat-eu1-test"
    assert_valid(seen)


def test_access_of_a_person_hubspot_does_not_hold_is_not_found_with_empty_data(
        hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    prefer(connector.http.session, connector.base_url, "example=no-match")
    result = connector.run(call("access"))
    assert (result.outcome, result.data) == ("not_found", {})
    assert_valid(seen)


def test_erasure_gdpr_deletes_the_contact_by_its_id(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    result = connector.run(call("erasure"))
    assert result.outcome == "done"
    assert seen.shapes() == [SEARCH, ("POST", "/crm/v3/objects/contacts/gdpr-delete")]
    assert json.loads(seen.seen[1].body or b"{}") == {"objectId": "512"}
    assert seen.seen[1].headers["Idempotency-Key"] == "task-1"
    assert_valid(seen)


def test_erasure_of_a_person_hubspot_does_not_hold_is_not_found_without_gdpr_delete(
        hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    prefer(connector.http.session, connector.base_url, "example=no-match")
    assert connector.run(call("erasure")).outcome == "not_found"
    assert seen.shapes() == [SEARCH]
    assert_valid(seen)


def test_rectification_patches_the_mapped_properties_and_ignores_unmapped_fields(
        hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    result = connector.run(call("rectification", changes={"first_name": "Ann", "postal_code": "11122",
                                                          "nickname": "x"}))
    assert result.outcome == "done"
    assert seen.shapes() == [SEARCH, ("PATCH", "/crm/v3/objects/contacts/512")]
    assert json.loads(seen.seen[1].body or b"{}") == {"properties": {"firstname": "Ann", "zip": "11122"}}
    assert_valid(seen)


def test_rectification_follows_the_fields_setting(hubspot_crm_url: str, hubspot_preferences_url: str) -> None:
    connector = build(definition(base_url=hubspot_crm_url, preferences_base_url=hubspot_preferences_url,
                                 fields={"first_name": "given_name", "postal_code": ""}), ENV)
    assert isinstance(connector, HubSpotConnector)
    seen = record(connector.http.session)
    connector.run(call("rectification", changes={"first_name": "Ann", "postal_code": "11122"}))
    assert json.loads(seen.seen[1].body or b"{}") == {"properties": {"given_name": "Ann"}}
    assert_valid(seen)


def test_consent_withdrawal_unsubscribes_the_contact_from_all_email(
        hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    result = connector.run(call("consent", purposes={"marketing_email": "withdrawn"}))
    assert result.outcome == "done"
    assert seen.shapes() == [SEARCH, ("POST", UNSUBSCRIBE_ALL)]
    assert seen.seen[1].body in (None, b"")
    assert_valid(seen)


def test_consent_withdrawal_fails_when_the_200_answer_carries_an_item_error(
        hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    prefer(connector.http.session, connector.preferences_url, "example=item-error")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("consent", purposes={"marketing_email": "withdrawn"}))
    assert caught.value.retryable is False
    assert "VALIDATION_ERROR" in caught.value.reason
    assert EMAIL not in caught.value.reason and EMAIL not in caught.value.excerpt
    assert_valid(seen)


def test_consent_for_a_person_hubspot_does_not_hold_is_not_found(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    prefer(connector.http.session, connector.base_url, "example=no-match")
    assert connector.run(call("consent", purposes={"marketing_email": "withdrawn"})).outcome == "not_found"
    assert seen.shapes() == [SEARCH]


def test_opt_in_reads_the_unsubscribe_all_status(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    assert connector.opt_in(EMAIL) is False
    prefer(connector.http.session, connector.preferences_url, "example=not-opted-out")
    assert connector.opt_in(EMAIL) is True
    assert seen.shapes() == [SEARCH, ("GET", UNSUBSCRIBE_ALL)] * 2
    assert_valid(seen)


def test_opt_in_of_a_person_hubspot_does_not_hold_is_none(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, _ = hubspot
    prefer(connector.http.session, connector.base_url, "example=no-match")
    assert connector.opt_in(EMAIL) is None


def test_test_connection_reads_one_contact(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, seen = hubspot
    assert "HUBSPOT_TOKEN" in connector.test_connection()
    assert seen.shapes() == [("GET", "/crm/v3/objects/contacts")]
    assert_valid(seen)


def test_a_400_fails_at_once_with_an_excerpt_that_holds_no_email(hubspot: tuple[HubSpotConnector, Recorder]) -> None:
    connector, _ = hubspot
    prefer(connector.http.session, connector.base_url, "code=400")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert (caught.value.retryable, caught.value.http_status) == (False, 400)
    assert "@" not in caught.value.reason and "@" not in caught.value.excerpt


@pytest.mark.parametrize("status", [429, 500])
def test_429_and_5xx_are_retryable(hubspot: tuple[HubSpotConnector, Recorder], status: int) -> None:
    connector, _ = hubspot
    prefer(connector.http.session, connector.base_url, f"code={status}")
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("erasure"))
    assert (caught.value.retryable, caught.value.http_status) == (True, status)


def test_a_daily_limit_429_without_retry_after_waits_long() -> None:
    answer = requests.Response()
    answer.status_code = 429
    answer._content = json.dumps({"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"}).encode()
    error = rate_limit_error("hubspot", answer, ())
    assert (error.retryable, error.retry_after) == (True, DAILY_LIMIT_RETRY_S)
    assert "daily" in error.reason


def test_a_missing_token_variable_fails_without_retry_naming_it(hubspot_crm_url: str) -> None:
    connector = build(definition(base_url=hubspot_crm_url), {})
    with pytest.raises(ConnectorError) as caught:
        connector.run(call("access"))
    assert caught.value.retryable is False
    assert "HUBSPOT_TOKEN" in caught.value.reason


@pytest.mark.parametrize(("settings", "key"), [
    ({"token_env": None}, "connectors[hubspot].token_env"),
    ({"base_url": "api.hubapi.com"}, "connectors[hubspot].base_url"),
    ({"fields": {"first_name": 5}}, "connectors[hubspot].fields.first_name"),
    ({"properties": "email"}, "connectors[hubspot].properties"),
])
def test_a_bad_setting_is_a_config_error_naming_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        build(definition(**settings), ENV)
