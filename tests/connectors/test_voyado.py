"""The voyado connector against a fake Engage tenant (tests/connectors/voyado_fake.py)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from privacy.connectors.base import ConfigError, ConnectorError, Skip, TaskCall
from privacy.connectors.registry import build
from privacy.connectors.voyado import VoyadoConnector
from privacy.policy.file import ConnectorDef
from tests.connectors.voyado_fake import API_KEY, VoyadoFake
from tests.fakes import Fault

EMAIL = "anna.lind@example.se"
ENV = {"VOYADO_API_KEY": API_KEY}


@pytest.fixture
def engage() -> Iterator[VoyadoFake]:
    fake = VoyadoFake()
    yield fake
    fake.close()


def connector(engage: VoyadoFake, environ: dict[str, str] | None = None, **settings: Any) -> VoyadoConnector:
    definition = ConnectorDef(name="voyado", type="voyado", operations=("access", "erasure"), retry={},
                              timeout_s=5, settings={"base_url": engage.url, "api_key_env": "VOYADO_API_KEY",
                                                     **settings})
    built = build(definition, ENV if environ is None else environ)
    assert isinstance(built, VoyadoConnector)
    return built


def call(operation: str, **kwargs: Any) -> TaskCall:
    return TaskCall(id="task-7", operation=operation, email=EMAIL, **kwargs)


def test_every_call_carries_apikey_user_agent_and_json_content_type(engage: VoyadoFake) -> None:
    engage.add(EMAIL, firstName="Anna")
    vo = connector(engage)
    for operation in ("access", "consent", "erasure"):
        vo.run(call(operation))
    assert len(engage.system.seen) >= 6
    for seen in engage.system.seen:
        assert seen.headers["Apikey"] == API_KEY
        assert seen.headers["Content-Type"] == "application/json"
        assert "/" in seen.headers["User-Agent"]


def test_access_returns_the_contact(engage: VoyadoFake) -> None:
    contact = engage.add(EMAIL, firstName="Anna", zipCode="11122")
    result = connector(engage).run(call("access"))
    assert result.outcome == "done"
    assert result.data is not None and result.data["id"] == contact and result.data["zipCode"] == "11122"


def test_access_for_an_unknown_person_is_not_found_with_empty_data(engage: VoyadoFake) -> None:
    result = connector(engage).run(call("access"))
    assert (result.outcome, result.data) == ("not_found", {})


def test_erasure_is_a_soft_delete_with_a_source(engage: VoyadoFake) -> None:
    contact = engage.add(EMAIL)
    result = connector(engage, source="gdpr-erasure").run(call("erasure"))
    assert result.outcome == "soft_deleted"
    assert contact in engage.deleted
    (delete,) = engage.system.requests_to("DELETE", "/api/v3/contacts/.+")
    assert delete.query["source"] == "gdpr-erasure"
    assert delete.headers.get("Idempotency-Key") == "task-7"


def test_erasure_of_a_person_engage_does_not_hold_is_not_found(engage: VoyadoFake) -> None:
    assert connector(engage).run(call("erasure")).outcome == "not_found"


def test_a_404_on_delete_means_already_deleted_and_is_not_found(engage: VoyadoFake) -> None:
    contact = engage.add(EMAIL)
    engage.system.route("GET", "/api/v3/contacts/id", (200, contact, {}))  # lookup still answers
    engage.system.routes.insert(0, engage.system.routes.pop())
    engage.deleted.add(contact)
    assert connector(engage).run(call("erasure")).outcome == "not_found"


def test_several_contacts_with_the_email_fail_with_the_reason(engage: VoyadoFake) -> None:
    engage.add(EMAIL)
    engage.add(EMAIL)
    with pytest.raises(ConnectorError) as failure:
        connector(engage).run(call("erasure"))
    assert failure.value.retryable is False and "MultipleMatches" in failure.value.reason
    assert EMAIL not in failure.value.reason and EMAIL not in failure.value.excerpt
    assert engage.system.requests_to("DELETE", ".*") == []


def test_consent_withdrawal_sets_accepts_email_false(engage: VoyadoFake) -> None:
    contact = engage.add(EMAIL)
    vo = connector(engage)
    assert vo.opt_in(EMAIL) is True
    result = vo.run(call("consent", purposes={"marketing_email": "withdrawn"}))
    assert result.outcome == "done"
    assert engage.contacts[contact]["preferences"]["acceptsEmail"] is False
    assert vo.opt_in(EMAIL) is False
    assert vo.opt_in("nobody@example.se") is None


def test_a_consent_change_that_withdraws_nothing_is_skipped(engage: VoyadoFake) -> None:
    engage.add(EMAIL)
    with pytest.raises(Skip):
        connector(engage).run(call("consent", purposes={"marketing_email": "granted"}))
    assert engage.system.seen == []


def test_rectification_sends_only_changed_non_empty_mapped_fields(engage: VoyadoFake) -> None:
    contact = engage.add(EMAIL, firstName="Ana", lastName="Lind", zipCode="11122")
    changes = {"first_name": "Anna", "last_name": "", "postal_code": "41101", "shoe_size": "38"}
    result = connector(engage, fields={"postal_code": "postalCode"}).run(call("rectification", changes=changes))
    assert result.outcome == "done"
    (patch,) = engage.system.requests_to("PATCH", "/api/v3/contacts/.+")
    assert patch.json() == {"firstName": "Anna", "postalCode": "41101"}
    assert engage.contacts[contact]["lastName"] == "Lind"


def test_rectification_of_an_unknown_person_is_not_found(engage: VoyadoFake) -> None:
    assert connector(engage).run(call("rectification", changes={"first_name": "Anna"})).outcome == "not_found"


def test_a_rejected_api_key_fails_at_once(engage: VoyadoFake) -> None:
    with pytest.raises(ConnectorError) as failure:
        connector(engage, environ={"VOYADO_API_KEY": "wrong"}).run(call("access"))
    assert failure.value.retryable is False and failure.value.http_status == 401


def test_rate_limiting_waits_for_retry_after(engage: VoyadoFake) -> None:
    engage.system.fail_next(Fault(429, {"message": "Too Many Requests"}, {"Retry-After": "7"}))
    with pytest.raises(ConnectorError) as failure:
        connector(engage).run(call("access"))
    assert failure.value.retryable is True and failure.value.retry_after == 7


def test_a_server_error_is_retryable_and_a_400_is_not(engage: VoyadoFake) -> None:
    vo = connector(engage)
    engage.system.fail_next(Fault(503))
    with pytest.raises(ConnectorError) as failure:
        vo.run(call("erasure"))
    assert failure.value.retryable is True
    engage.system.fail_next(Fault(400, {"errorCode": "InvalidEmailAddress", "message": f"{EMAIL} is invalid"}))
    with pytest.raises(ConnectorError) as refused:
        vo.run(call("erasure"))
    assert refused.value.retryable is False and refused.value.http_status == 400
    assert EMAIL not in refused.value.reason and EMAIL not in refused.value.excerpt


def test_test_connection_proves_the_key_with_a_lookup(engage: VoyadoFake) -> None:
    assert "API key accepted" in connector(engage).test_connection()
    with pytest.raises(ConnectorError):
        connector(engage, environ={"VOYADO_API_KEY": "wrong"}).test_connection()


def test_a_missing_api_key_names_the_variable(engage: VoyadoFake) -> None:
    with pytest.raises(ConnectorError) as failure:
        connector(engage, environ={}).run(call("access"))
    assert "VOYADO_API_KEY" in failure.value.reason and failure.value.retryable is False


@pytest.mark.parametrize(("settings", "key"), [
    ({"base_url": ""}, "base_url"),
    ({"base_url": "acme.voyado.com"}, "base_url"),
    ({"api_key_env": None}, "api_key_env"),
    ({"user_agent": "no version"}, "user_agent"),
    ({"fields": ["firstName"]}, "fields"),
])
def test_a_bad_setting_is_a_config_error_naming_the_key(engage: VoyadoFake, settings: dict[str, Any],
                                                        key: str) -> None:
    with pytest.raises(ConfigError, match=rf"connectors\[voyado\]\.{key}:"):
        connector(engage, **settings)
