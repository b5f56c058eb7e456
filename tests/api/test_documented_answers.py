"""What ``/openapi.json`` promises, route by route, and the answers that keep it.

The schemathesis run (test_openapi_conformance) tries generated requests; these pin the
cases it may not happen upon: integers beyond 64 bits, integral floats, the bounds of
every integer, a JSON or a page from the same link, and the JSON encoder of the answers.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import SIGNUP

MAX_SEQ = 2**63 - 1


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    doc: dict[str, Any] = client.get("/openapi.json").get_json()
    return doc


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _integers(document: dict[str, Any], schema: Any, path: str, seen: frozenset[str] = frozenset()
              ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, schema) of every integer in ``schema``, following references."""
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if ref is not None:
        if ref not in seen:
            yield from _integers(document, _resolve(document, schema), path, seen | {ref})
        return
    kinds = schema.get("type")
    if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds):
        yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _integers(document, sub, f"{path}.{name}", seen)
    for key in ("items", "additionalProperties"):
        yield from _integers(document, schema.get(key), f"{path}[]", seen)
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _integers(document, sub, f"{path}<{i}>", seen)


def test_every_integer_a_request_carries_has_documented_bounds(document: dict[str, Any]) -> None:
    integers = []
    for route, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
                integers += _integers(document, parameter["schema"], f"{method.upper()} {route} {parameter['name']}")
            for media in operation.get("requestBody", {}).get("content", {}).values():
                integers += _integers(document, media["schema"], f"{method.upper()} {route} body")
    assert len(integers) >= 5  # limit, after, days, consent_valid_days, period_days, ...
    unbounded = [path for path, schema in integers if "minimum" not in schema or "maximum" not in schema]
    assert unbounded == []


@pytest.mark.parametrize("after", [str(MAX_SEQ + 1), str(2**64), "9" * 40, "-1"])
def test_an_audit_position_beyond_its_bounds_is_422_naming_it(client: FlaskClient, admin: dict[str, str],
                                                               after: str) -> None:
    r = client.get(f"/v1/audit/log?after={after}", headers=admin)
    assert r.status_code == 422, r.get_data(as_text=True)
    assert list(r.json["error"]["details"]) == ["after"]


def test_the_largest_audit_position_is_a_valid_one(client: FlaskClient, admin: dict[str, str]) -> None:
    r = client.get(f"/v1/audit/log?after={MAX_SEQ}", headers=admin)
    assert r.status_code == 200 and r.json == {"entries": []}


def test_an_integer_written_with_a_zero_fraction_is_that_integer(client: FlaskClient, officer: dict[str, str],
                                                                 admin: dict[str, str]) -> None:
    """JSON Schema counts 30.0 as the integer 30, so the document allows it: so does the service."""
    opened = client.post("/v1/requests", json={"type": "access", "email": "anna@example.se"}).json
    r = client.post(f"/v1/requests/{opened['id']}/extend", json={"days": 30.0, "reason": "busy"}, headers=officer)
    assert r.status_code == 200, r.json
    assert client.post(f"/v1/requests/{opened['id']}/extend", json={"days": 30.5, "reason": "busy"},
                       headers=officer).status_code == 422
    body = {"name": {"en": "Push"}, "legal_basis": "consent", "fields": ["email"], "consent_valid_days": 365.0,
            "retention": {"period_days": 30.0, "after": "withdrawal", "action": "delete"}}
    r = client.put("/v1/purposes/push", json=body, headers=admin)
    assert r.status_code == 200, r.json
    assert r.json["consent_valid_days"] == 365 and r.json["retention"]["period_days"] == 30


def test_a_sign_up_answer_is_the_service_body_as_it_was(client: FlaskClient, writer: dict[str, str]) -> None:
    """The sign-up's answer schema writes what the service returns, unchanged: compact JSON by orjson."""
    r = client.post("/v1/consents", json=SIGNUP, headers=writer)
    assert r.status_code == 201 and r.mimetype == "application/json"
    assert set(r.json) == {"subject_id", "consents", "receipt", "dropped_fields"}
    assert r.data.endswith(b"}\n") and b'": ' not in r.data and b'", "' not in r.data


def test_a_link_answers_a_json_client_with_its_schema_and_a_browser_with_a_page(client: FlaskClient) -> None:
    as_json = client.post("/v1/consents/confirm/nope", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and set(as_json.json["error"]) == {"code", "message", "details"}
    as_page = client.post("/v1/consents/confirm/nope", headers={"Accept": "text/html"})
    assert as_page.status_code == 404 and as_page.mimetype == "text/html"


def test_answers_the_document_describes_as_pages_and_files_say_so(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert set(paths["/v1/consents/confirm/{token}"]["get"]["responses"]["200"]["content"]) == {"text/html"}
    assert set(paths["/v1/consents/confirm/{token}"]["post"]["responses"]["200"]["content"]) == {
        "application/json", "text/html"}
    assert set(paths["/v1/requests/{request_id}/package"]["get"]["responses"]["200"]["content"]) == {
        "application/zip"}
    assert set(paths["/v1/requests/{request_id}/download"]["post"]["responses"]["404"]["content"]) == {
        "application/json", "text/html"}


def test_every_error_answer_is_documented_as_the_error_envelope(document: dict[str, Any]) -> None:
    for route, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, answer in operation["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" in answer:
                    answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {route} {status}"


def test_answers_too_large_for_orjson_are_still_written(app: Flask) -> None:
    with app.app_context():
        big = app.json.response({"n": 2**70})
        assert json.loads(big.get_data()) == {"n": 2**70}
        plain = app.json.response({"a": [1, "b"]})
        assert plain.get_data() == b'{"a":[1,"b"]}\n' and plain.mimetype == "application/json"
