"""Consent receipts: Kantara CR v1.1 shape, signed with the published key."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
from cryptography.exceptions import InvalidSignature
from flask import Flask
from flask.testing import FlaskClient

from privacy.crypto.keys import b64url, verify_jws
from tests.conftest import SIGNUP

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "kantara-consent-receipt-v1.1.schema.json").read_text())


def _receipt(client: FlaskClient, writer: dict[str, str]) -> dict:
    return client.post("/v1/consents", json=SIGNUP, headers=writer).json["receipt"]


def test_receipt_validates_against_the_kantara_schema(client: FlaskClient, writer: dict[str, str]) -> None:
    receipt = _receipt(client, writer)
    jsonschema.validate({k: v for k, v in receipt.items() if k != "signature"}, SCHEMA)


def test_receipt_names_each_purpose_with_notice_version_hash_and_legal_basis(
        client: FlaskClient, writer: dict[str, str], admin: dict[str, str]) -> None:
    receipt = _receipt(client, writer)
    purposes = {p["code"]: p for p in client.get("/v1/purposes", headers=admin).json["purposes"]}
    by_code = {c["purpose"]: c for c in receipt["consents"]}
    assert set(by_code) == {"loyalty_club", "marketing_email", "profiling"}
    assert by_code["marketing_email"]["legal_basis"] == "consent"
    assert by_code["loyalty_club"]["legal_basis"] == "contract"
    assert by_code["marketing_email"]["notice_version"] == "2026-11-01"
    assert by_code["marketing_email"]["notice_text_hash"] == purposes["marketing_email"]["notice"]["text_hash"]
    assert receipt["collector"] == SIGNUP["source"]
    assert "anna" not in json.dumps(receipt).lower()  # pseudonymous: no personal values


def test_receipt_signature_verifies_with_the_published_key(client: FlaskClient, writer: dict[str, str]) -> None:
    receipt = _receipt(client, writer)
    jwks = client.get("/v1/receipts/keys").json
    (key,) = jwks["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
    header = json.loads(base64.urlsafe_b64decode(receipt["signature"].split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["kid"] == key["kid"]
    payload = verify_jws(receipt["signature"], key["x"])
    assert payload == {k: v for k, v in receipt.items() if k != "signature"}


def test_a_tampered_receipt_fails_verification(client: FlaskClient, writer: dict[str, str]) -> None:
    receipt = _receipt(client, writer)
    key = client.get("/v1/receipts/keys").json["keys"][0]
    header, _payload, signature = receipt["signature"].split(".")
    forged = dict(receipt)
    forged.pop("signature")
    forged["piiPrincipalId"] = "someone-else"
    forged_payload = b64url(json.dumps(forged, separators=(",", ":"), sort_keys=True).encode())
    with pytest.raises(InvalidSignature):
        verify_jws(f"{header}.{forged_payload}.{signature}", key["x"])


def test_receipts_are_signed_with_the_bytes_openssl_would_give(app: Flask) -> None:
    """libsodium signs, OpenSSL (cryptography) defines: Ed25519 is deterministic, so the
    two must agree byte for byte for the service's own key."""
    crypto = app.extensions["privacy"].crypto
    jws = crypto.sign_jws({"consentReceiptID": "r-1", "piiPrincipalId": "s-1", "services": []})
    header, payload, signature = jws.split(".")
    expected = crypto._signing_key.sign(f"{header}.{payload}".encode())
    assert base64.urlsafe_b64decode(signature + "==") == expected


def test_a_swedish_sign_up_gets_a_signed_receipt_in_swedish(client: FlaskClient, writer: dict[str, str]) -> None:
    receipt = client.post("/v1/consents", json={**SIGNUP, "language": "sv"}, headers=writer).json["receipt"]
    jsonschema.validate({k: v for k, v in receipt.items() if k != "signature"}, SCHEMA)
    assert receipt["language"] == "sv"
    services = {p["purpose"]: p for p in receipt["services"][0]["purposes"]}
    assert set(services) == {"Medlemskap i kundklubben", "Erbjudanden via e-post", "Personliga erbjudanden"}
    assert services["Medlemskap i kundklubben"]["termination"] == (
        "Upphör med avtalet. Uppgifterna anonymiseras 730 dagar efter din senaste aktivitet.")
    assert services["Erbjudanden via e-post"]["termination"].startswith("Återkalla när som helst")
    key = client.get("/v1/receipts/keys").json["keys"][0]
    assert verify_jws(receipt["signature"], key["x"]) == {k: v for k, v in receipt.items() if k != "signature"}


def test_an_english_receipt_says_how_each_purpose_ends(client: FlaskClient, writer: dict[str, str]) -> None:
    receipt = _receipt(client, writer)
    assert receipt["language"] == "en"
    services = {p["purpose"]: p for p in receipt["services"][0]["purposes"]}
    assert services["Loyalty club membership"]["termination"] == (
        "Ends with the contract. Data is anonymised 730 days after last activity.")
