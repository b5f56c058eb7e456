"""The salesforce connector against a fake org (tests/connectors/salesforce_fake.py)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from privacy.connectors.base import ConfigError, ConnectorError, Skip, TaskCall
from privacy.connectors.registry import build
from privacy.connectors.salesforce import SalesforceConnector, soql_string
from privacy.policy.file import ConnectorDef
from tests.connectors.salesforce_fake import API, CLIENT_ID, CLIENT_SECRET, SalesforceFake
from tests.fakes import Fault

EMAIL = "anna.lind@example.se"
ENV = {"SF_CLIENT_ID": CLIENT_ID, "SF_CLIENT_SECRET": CLIENT_SECRET}


@pytest.fixture
def org() -> Iterator[SalesforceFake]:
    fake = SalesforceFake()
    yield fake
    fake.close()


def connector(org: SalesforceFake, environ: dict[str, str] | None = None, **settings: Any) -> SalesforceConnector:
    definition = ConnectorDef(name="salesforce", type="salesforce", operations=("access", "erasure", "consent"),
                              retry={}, timeout_s=5, settings={
                                  "base_url": org.url, "client_id_env": "SF_CLIENT_ID",
                                  "client_secret_env": "SF_CLIENT_SECRET", **settings})
    built = build(definition, ENV if environ is None else environ)
    assert isinstance(built, SalesforceConnector)
    return built


def call(operation: str, email: str = EMAIL, **kwargs: Any) -> TaskCall:
    return TaskCall(id="task-1", operation=operation, email=email, **kwargs)


def test_access_returns_the_contacts_and_leads_with_that_email(org: SalesforceFake) -> None:
    contact = org.add("Contact", Email=EMAIL, FirstName="Anna", LastName="Lind", MailingPostalCode="11122")
    lead = org.add("Lead", Email=EMAIL, LastName="Lind", Company="Lind AB")
    org.add("Contact", Email="someone@example.se", LastName="Other")

    result = connector(org).run(call("access"))

    assert result.outcome == "done"
    assert result.data is not None
    assert [r["Id"] for r in result.data["Contact"]] == [contact]
    assert result.data["Contact"][0]["MailingPostalCode"] == "11122"
    assert "attributes" not in result.data["Contact"][0]
    assert [r["Id"] for r in result.data["Lead"]] == [lead]


def test_access_for_an_unknown_person_is_not_found_with_empty_data(org: SalesforceFake) -> None:
    result = connector(org).run(call("access"))
    assert (result.outcome, result.data) == ("not_found", {})


def test_the_query_follows_next_records_url_to_the_last_page(org: SalesforceFake) -> None:
    ids = [org.add("Contact", Email=EMAIL, LastName=f"Lind{i}") for i in range(5)]
    org.page_size = 2

    result = connector(org).run(call("access"))

    assert result.data is not None and [r["Id"] for r in result.data["Contact"]] == ids
    assert len(org.system.requests_to("GET", f"{API}/query/.+")) == 2


def test_a_quote_or_backslash_in_the_email_cannot_change_the_query(org: SalesforceFake) -> None:
    tricky = "o'brien\\' OR Email != '@example.se"
    org.add("Contact", Email=tricky, LastName="Obrien")
    org.add("Contact", Email="other@example.se", LastName="Other")

    result = connector(org).run(call("access", email=tricky))

    assert result.data is not None and [r["LastName"] for r in result.data["Contact"]] == ["Obrien"]
    assert soql_string("a'b\\c") == "'a\\'b\\\\c'"


def test_erasure_deletes_each_contact_and_lead(org: SalesforceFake) -> None:
    org.add("Contact", Email=EMAIL, LastName="Lind")
    org.add("Lead", Email=EMAIL, LastName="Lind", Company="Lind AB")

    result = connector(org).run(call("erasure"))

    assert result.outcome == "done"
    assert org.records["Contact"] == {} and org.records["Lead"] == {}
    deletes = org.system.requests_to("DELETE", f"{API}/sobjects/.+")
    assert len(deletes) == 2 and all(d.headers.get("Idempotency-Key") == "task-1" for d in deletes)
    assert EMAIL not in result.excerpt


def test_erasure_of_a_person_the_org_does_not_hold_is_not_found(org: SalesforceFake) -> None:
    result = connector(org).run(call("erasure"))
    assert result.outcome == "not_found"
    assert org.system.requests_to("DELETE", ".*") == []


def test_erasure_forget_blanks_the_fields_and_flags_the_individual(org: SalesforceFake) -> None:
    individual = org.add("Individual", LastName="Lind", ShouldForget=False)
    contact = org.add("Contact", Email=EMAIL, FirstName="Anna", LastName="Lind", Phone="+4670",
                      IndividualId=individual)

    result = connector(org, erasure="forget").run(call("erasure"))

    assert result.outcome == "done"
    record = org.records["Contact"][contact]
    assert (record["Email"], record["FirstName"], record["Phone"]) == (None, None, None)
    assert record["LastName"] != "Lind" and record["HasOptedOutOfEmail"] is True
    assert org.records["Individual"][individual]["ShouldForget"] is True


def test_consent_withdrawal_opts_every_record_out_of_email(org: SalesforceFake) -> None:
    contact = org.add("Contact", Email=EMAIL, LastName="Lind")
    lead = org.add("Lead", Email=EMAIL, LastName="Lind", Company="Lind AB")
    sf = connector(org)
    assert sf.opt_in(EMAIL) is True

    result = sf.run(call("consent", purposes={"marketing_email": "withdrawn"}))

    assert result.outcome == "done"
    assert org.records["Contact"][contact]["HasOptedOutOfEmail"] is True
    assert org.records["Lead"][lead]["HasOptedOutOfEmail"] is True
    assert sf.opt_in(EMAIL) is False
    assert sf.opt_in("nobody@example.se") is None


def test_consent_for_an_unknown_person_is_not_found(org: SalesforceFake) -> None:
    assert connector(org).run(call("consent", purposes={"marketing_email": "expired"})).outcome == "not_found"


def test_a_consent_change_that_withdraws_nothing_is_skipped(org: SalesforceFake) -> None:
    with pytest.raises(Skip):
        connector(org).run(call("consent", purposes={"marketing_email": "granted"}))


def test_rectification_patches_the_mapped_fields_of_each_object(org: SalesforceFake) -> None:
    contact = org.add("Contact", Email=EMAIL, FirstName="Ana", LastName="Lind", Title="x")
    lead = org.add("Lead", Email=EMAIL, LastName="Lind", Company="Lind AB")
    changes = {"first_name": "Anna", "postal_code": "41101", "shoe_size": "38", "last_name": ""}

    result = connector(org, fields={"phone": "MobilePhone"}).run(call("rectification", changes=changes))

    assert result.outcome == "done"
    assert org.records["Contact"][contact]["FirstName"] == "Anna"
    assert org.records["Contact"][contact]["MailingPostalCode"] == "41101"
    assert org.records["Lead"][lead]["PostalCode"] == "41101"
    patches = [s.json() for s in org.system.requests_to("PATCH", f"{API}/sobjects/.+")]
    assert all("LastName" not in p and "shoe_size" not in p for p in patches)


def test_rectification_of_an_unknown_person_is_not_found(org: SalesforceFake) -> None:
    result = connector(org).run(call("rectification", changes={"first_name": "Anna"}))
    assert result.outcome == "not_found"


def test_the_token_is_fetched_once_and_shared_by_threads(org: SalesforceFake) -> None:
    org.add("Contact", Email=EMAIL, LastName="Lind")
    sf = connector(org)
    errors: list[Exception] = []

    def work() -> None:
        try:
            sf.run(call("access"))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(org.system.requests_to("POST", "/services/oauth2/token")) == 1


def test_an_expired_token_is_refreshed_once_on_401(org: SalesforceFake) -> None:
    org.add("Contact", Email=EMAIL, LastName="Lind")
    sf = connector(org)
    sf.run(call("access"))
    org.tokens.clear()  # the session expired

    assert sf.run(call("access")).outcome == "done"
    assert len(org.system.requests_to("POST", "/services/oauth2/token")) == 2


def test_a_401_after_a_fresh_token_fails_without_looping(org: SalesforceFake) -> None:
    sf = connector(org)
    sf.run(call("access"))
    org.tokens.clear()
    invalid = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    org.system.fail_next(Fault(401, invalid), Fault(401, invalid))

    with pytest.raises(ConnectorError) as failure:
        sf.run(call("access"))

    assert failure.value.retryable is False and failure.value.http_status == 401
    assert len(org.system.requests_to("POST", "/services/oauth2/token")) == 2


def test_wrong_client_credentials_fail_at_once(org: SalesforceFake) -> None:
    sf = connector(org, environ={"SF_CLIENT_ID": CLIENT_ID, "SF_CLIENT_SECRET": "wrong"})
    with pytest.raises(ConnectorError) as failure:
        sf.test_connection()
    assert failure.value.retryable is False and failure.value.http_status == 400
    assert "wrong" not in failure.value.reason + failure.value.excerpt


def test_salesforce_daily_limit_is_retried_later(org: SalesforceFake) -> None:
    sf = connector(org)
    sf.test_connection()
    org.system.fail_next(Fault(403, [{"message": "TotalRequests Limit exceeded.",
                                      "errorCode": "REQUEST_LIMIT_EXCEEDED"}]))
    with pytest.raises(ConnectorError) as failure:
        sf.run(call("access"))
    assert failure.value.retryable is True
    assert failure.value.retry_after == 3600
    assert "REQUEST_LIMIT_EXCEEDED" in failure.value.reason


def test_any_other_403_fails_at_once(org: SalesforceFake) -> None:
    org.system.fail_next(Fault(403, [{"message": "insufficient access rights on object id",
                                      "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}]))
    with pytest.raises(ConnectorError) as failure:
        connector(org).run(call("access"))
    assert failure.value.retryable is False and failure.value.http_status == 403


def test_a_refused_request_fails_without_the_email_in_reason_or_excerpt(org: SalesforceFake) -> None:
    sf = connector(org)
    sf.test_connection()
    org.system.fail_next(Fault(400, [{"message": f"bad value for Email: {EMAIL} (Anna)",
                                      "errorCode": "MALFORMED_QUERY"}]))
    with pytest.raises(ConnectorError) as failure:
        sf.run(call("access"))
    assert failure.value.retryable is False and failure.value.http_status == 400
    assert EMAIL not in failure.value.reason and EMAIL not in failure.value.excerpt


def test_a_server_error_is_retryable(org: SalesforceFake) -> None:
    sf = connector(org)
    sf.test_connection()
    org.system.fail_next(Fault(503, "Service Unavailable"))
    with pytest.raises(ConnectorError) as failure:
        sf.run(call("erasure"))
    assert failure.value.retryable is True


def test_test_connection_reports_the_daily_allowance(org: SalesforceFake) -> None:
    assert "14990 of 15000" in connector(org).test_connection()


def test_a_missing_secret_names_the_variable_not_a_value(org: SalesforceFake) -> None:
    with pytest.raises(ConnectorError) as failure:
        connector(org, environ={"SF_CLIENT_SECRET": CLIENT_SECRET}).run(call("access"))
    assert "SF_CLIENT_ID" in failure.value.reason and CLIENT_SECRET not in failure.value.reason
    assert failure.value.retryable is False


@pytest.mark.parametrize(("settings", "key"), [
    ({"base_url": None}, "base_url"),
    ({"base_url": "ftp://acme"}, "base_url"),
    ({"client_id_env": ""}, "client_id_env"),
    ({"api_version": "62"}, "api_version"),
    ({"erasure": "shred"}, "erasure"),
    ({"fields": {"first_name": "First Name; DELETE"}}, r"fields\.first_name"),
])
def test_a_bad_setting_is_a_config_error_naming_the_key(org: SalesforceFake, settings: dict[str, Any],
                                                        key: str) -> None:
    with pytest.raises(ConfigError, match=rf"connectors\[salesforce\]\.{key}:"):
        connector(org, **settings)
