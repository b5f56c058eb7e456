"""The Kantara Consent Receipt v1.1 JSON Schema is valid and accepts/rejects receipts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMA_PATH = (
    Path(__file__).parent / "schemas" / "kantara-consent-receipt-v1.1.schema.json"
)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def minimal_receipt() -> dict[str, Any]:
    """A hand-written receipt with only the required fields."""
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": "SE",
        "consentTimestamp": 1763806953,
        "collectionMethod": "web form, unticked checkbox",
        "consentReceiptID": "0b6a4f4e-3f47-4c43-9d59-2a51c8f0e8a1",
        "piiPrincipalId": "subject-42",
        "piiControllers": [
            {
                "piiController": "Exempel AB",
                "contact": "Dataskyddsombudet",
                "address": {"streetAddress": "Storgatan 1", "addressCountry": "SE"},
                "email": "dpo@example.se",
                "phone": "+46 8 123 456",
            }
        ],
        "policyUrl": "https://example.se/integritet/v3",
        "services": [
            {
                "service": "Nyhetsbrev",
                "purposes": [
                    {
                        "purposeCategory": ["Marketing"],
                        "consentType": "EXPLICIT",
                        "piiCategory": ["Contact"],
                        "termination": "Until withdrawn",
                        "thirdPartyDisclosure": False,
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
    }


def test_the_schema_itself_is_a_valid_json_schema(
    validator: Draft202012Validator,
) -> None:
    assert validator.schema["properties"]["version"]["const"] == "KI-CR-v1.1.0"


def test_a_minimal_receipt_is_valid(validator: Draft202012Validator) -> None:
    assert list(validator.iter_errors(minimal_receipt())) == []


def test_a_receipt_without_pii_principal_id_is_invalid(
    validator: Draft202012Validator,
) -> None:
    receipt = minimal_receipt()
    del receipt["piiPrincipalId"]
    errors = list(validator.iter_errors(receipt))
    assert [e.validator for e in errors] == ["required"]
    assert "'piiPrincipalId' is a required property" in errors[0].message


def test_extra_top_level_fields_are_allowed(validator: Draft202012Validator) -> None:
    receipt = minimal_receipt() | {"noticeVersion": "3", "noticeTextSha256": "ab" * 32}
    assert validator.is_valid(receipt)


def _mutate(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    receipt = copy.deepcopy(minimal_receipt())
    target: Any = receipt
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return receipt


PURPOSE = ("services", 0, "purposes", 0)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), "KI-CR-v1.0.0"),
        (("consentTimestamp",), "2025-11-22T10:22:33Z"),
        (("sensitive",), "false"),
        (("piiPrincipalId",), ""),
        (("piiControllers", 0, "address"), "Storgatan 1, Stockholm"),
        ((*PURPOSE, "thirdPartyDisclosure"), True),  # without thirdPartyName
        ((*PURPOSE, "purposeCategory"), "Marketing"),
        ((*PURPOSE, "consentTpye"), "EXPLICIT"),
        (("sensitive",), True),  # with an empty spiCat
    ],
    ids=[
        "wrong-version",
        "timestamp-not-epoch",
        "sensitive-not-bool",
        "empty-principal",
        "address-as-string",
        "third-party-unnamed",
        "category-not-array",
        "typo-in-purpose",
        "sensitive-without-spicat",
    ],
)
def test_receipts_breaking_the_spec_are_invalid(
    validator: Draft202012Validator, path: tuple[str | int, ...], value: Any
) -> None:
    assert not validator.is_valid(_mutate(path, value))
