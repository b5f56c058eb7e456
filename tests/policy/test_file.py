"""The policy file: the example loads; a wrong file names the key and the line."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from flask import Flask

from privacy.policy.file import DEFAULT_POLICY_FILE, PolicyError, load_policy, parse_policy

EXAMPLE = DEFAULT_POLICY_FILE.read_text()


def _line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def test_the_example_policy_loads_with_every_purpose() -> None:
    policy = load_policy()
    assert [p.code for p in policy.purposes] == ["loyalty_club", "marketing_email", "sms", "profiling",
                                                 "targeted_ads"]
    assert [h.code for h in policy.legal_holds] == ["bookkeeping"]
    assert policy.age_of_consent_for("NO") == 13
    assert policy.age_of_consent_for("FR") == 16


def test_a_misspelt_legal_basis_names_key_and_line() -> None:
    broken = EXAMPLE.replace("legal_basis: consent\n    fields: [phone", "legal_basis: consnet\n    fields: [phone")
    with pytest.raises(PolicyError) as info:
        parse_policy(broken, "policy.yaml")
    line = _line_of(broken, "legal_basis: consnet")
    assert (f"purposes[2].legal_basis: 'consnet' is not one of consent, contract, legal_obligation, "
            f"legitimate_interest, vital_interest, public_task (line {line})") in str(info.value)


def test_a_purpose_field_outside_the_catalogue_is_named() -> None:
    broken = EXAMPLE.replace("fields: [email, first_name]\n    double_opt_in",
                             "fields: [email, shoe_size]\n    double_opt_in")
    with pytest.raises(PolicyError, match=r"purposes\[1\]\.fields\[1\]: 'shoe_size' is not in the fields catalogue"):
        parse_policy(broken)


def test_a_field_label_is_read_per_language_and_falls_back_to_english_then_the_name() -> None:
    policy = parse_policy(EXAMPLE.replace("label: {en: Postal code, sv: Postnummer}", "label: {en: Postal code}"))
    assert policy.field_label("first_name", "sv") == "Förnamn"
    assert policy.field_label("postal_code", "sv") == "Postal code"
    assert policy.field_label("shoe_size", "sv") == "shoe_size"


def test_an_empty_field_label_is_named() -> None:
    broken = EXAMPLE.replace("label: {en: Last name, sv: Efternamn}", "label: {en: Last name, sv: ''}")
    with pytest.raises(PolicyError, match=r"fields\.last_name\.value\.label\.sv\.value: Length must be between 1 and"):
        parse_policy(broken)


def test_an_unknown_key_is_named() -> None:
    broken = EXAMPLE.replace("    double_opt_in: true\n", "    double_opt_in: true\n    dobule_opt_out: true\n")
    with pytest.raises(PolicyError, match=r"purposes\[1\]\.dobule_opt_out: Unknown field\. \(line \d+\)"):
        parse_policy(broken)


def test_double_opt_in_on_a_contract_purpose_is_refused() -> None:
    broken = EXAMPLE.replace("legal_basis: contract\n", "legal_basis: contract\n    double_opt_in: true\n")
    with pytest.raises(PolicyError, match=r"purposes\[0\]\.double_opt_in: only a purpose with legal_basis consent"):
        parse_policy(broken)


def test_bad_yaml_reports_its_line() -> None:
    with pytest.raises(PolicyError, match=r"not valid YAML.*\(line 3\)"):
        parse_policy("fields:\n  email: {type: email\npurposes: [\n")


def test_an_unquoted_norway_is_caught_not_taken_as_false() -> None:
    broken = EXAMPLE.replace('"NO": 13', "NO: 13")
    with pytest.raises(PolicyError, match=r"age_of_consent\.countries"):
        parse_policy(broken)


def test_an_invalid_policy_file_stops_the_service(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(EXAMPLE.replace("retention: {period_days: 730, after: last_activity, action: anonymise}",
                                   "retention: {period_days: -1, after: last_activity, action: anonymise}"))
    with pytest.raises(PolicyError, match=r"purposes\[0\]\.retention\.period_days"):
        make_app(POLICY_FILE=str(bad))


def test_an_unknown_time_zone_is_named() -> None:
    broken = EXAMPLE.replace("time_zone: Europe/Stockholm", "time_zone: Europe/Stokholm")
    with pytest.raises(PolicyError, match=r"controller\.time_zone: 'Europe/Stokholm' is not a known time zone"):
        parse_policy(broken)


def test_a_legal_hold_for_an_undeclared_purpose_is_named() -> None:
    broken = EXAMPLE.replace("applies_to: [loyalty_club]", "applies_to: [loyalty_clubb]")
    with pytest.raises(PolicyError, match=r"legal_holds\[0\]\.applies_to\[0\]: 'loyalty_clubb' is not a declared"):
        parse_policy(broken)


def test_a_legal_hold_covers_the_purposes_it_names() -> None:
    policy = load_policy()
    hold = policy.legal_holds[0]
    purposes = {p.code: p for p in policy.purposes}
    assert hold.covers(purposes, {"loyalty_club", "marketing_email"})
    assert not hold.covers(purposes, {"marketing_email"})


CONTRACT_CONNECTORS = """
connectors:
  - {name: crm, type: webhook, url: "https://crm.example.se/privacy", secret_env: CRM_WEBHOOK_SECRET,
     operations: [access, erasure, rectification, consent]}
  - {name: hubspot, type: hubspot, token_env: HUBSPOT_TOKEN}
  - {name: mailchimp, type: mailchimp, api_key_env: MAILCHIMP_API_KEY, audiences: [a1b2c3d4e5]}
  - {name: klaviyo, type: klaviyo, api_key_env: KLAVIYO_API_KEY, max_in_flight: 2}
  - {name: salesforce, type: salesforce, base_url: "https://acme.my.salesforce.com",
     client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET}
  - {name: voyado, type: voyado, base_url: "https://acme.voyado.com", api_key_env: VOYADO_API_KEY}
  - name: orders
    type: sql
    url_env: ORDERS_DATABASE_URL
    tables:
      - {name: customers, key: email, columns: [name, phone, address], erase: "null"}
  - {name: paper-archive, type: manual, owner_email: archive@example.se}
"""


def _with_connectors(text: str) -> str:
    return EXAMPLE.replace("connectors: []\n", text.lstrip("\n"))


def test_every_connector_type_of_the_documented_example_loads_with_its_settings() -> None:
    policy = parse_policy(_with_connectors(CONTRACT_CONNECTORS))
    assert [(c.name, c.type) for c in policy.connectors] == [
        ("crm", "webhook"), ("hubspot", "hubspot"), ("mailchimp", "mailchimp"), ("klaviyo", "klaviyo"),
        ("salesforce", "salesforce"), ("voyado", "voyado"), ("orders", "sql"), ("paper-archive", "manual")]
    klaviyo = policy.connectors[3]
    assert klaviyo.max_in_flight == 2 and policy.connectors[0].max_in_flight == 4
    assert policy.connectors[6].settings["tables"][0]["erase"] == "null"
    assert policy.connectors[4].secret_variables() == {"client_id_env": "SF_CLIENT_ID",
                                                       "client_secret_env": "SF_CLIENT_SECRET"}


def test_missing_secret_variables_are_named_and_never_their_values() -> None:
    policy = parse_policy(_with_connectors(CONTRACT_CONNECTORS))
    missing = policy.missing_secrets({"HUBSPOT_TOKEN": "pat-secret", "SF_CLIENT_ID": "id", "SF_CLIENT_SECRET": ""})
    assert missing["salesforce"] == ["SF_CLIENT_SECRET"] and "hubspot" not in missing
    assert missing["crm"] == ["CRM_WEBHOOK_SECRET"] and "paper-archive" not in missing
    assert "pat-secret" not in repr(missing)


@pytest.mark.parametrize(("setting", "message"), [
    ("max_in_flight: 0", "max_in_flight"),
    ("retry: {initial_delay_s: 60, max_delay_s: 30}", "max_delay_s: must not be below initial_delay_s"),
    ("token_env: 'not a name'", "token_env: must name an environment variable"),
])
def test_a_wrong_connector_setting_is_named(setting: str, message: str) -> None:
    text = _with_connectors(f"connectors:\n  - {{name: hubspot, type: hubspot, {setting}}}\n")
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_the_service_warns_at_start_of_each_missing_secret_by_name(
        tmp_path: Path, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_with_connectors("connectors:\n  - {name: hubspot, type: hubspot, token_env: HUBSPOT_TOKEN_X}\n"))
    monkeypatch.delenv("HUBSPOT_TOKEN_X", raising=False)
    with caplog.at_level("WARNING", logger="api"):
        make_app(POLICY_FILE=str(policy))
    assert any("hubspot" in r.getMessage() and "HUBSPOT_TOKEN_X" in r.getMessage() for r in caplog.records)


def test_a_connectors_fields_and_purposes_must_be_in_the_catalogue(tmp_path: Path) -> None:
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    policy["connectors"] = [{"name": "crm", "type": "webhook", "url": "https://crm.example.se", "secret_env": "S",
                             "fields": {"shoe_size": "SHOE"}, "purposes": ["telepathy"]}]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    with pytest.raises(PolicyError) as refused:
        load_policy(str(path))
    message = str(refused.value)
    assert "connectors[0].fields" in message and "'shoe_size' is not in the fields catalogue" in message
    assert "connectors[0].purposes[0]: 'telepathy' is not a declared purpose" in message
