"""GET /openapi.json: a valid OpenAPI 3 document that describes every route the app serves.

The routes come from ``app.url_map`` itself, so a route added without its description
fails here. Routes behind an API key (views wrapped by ``api.auth.requires``) must declare
the ``bearerAuth`` security scheme, and routes without one must not.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from werkzeug.routing import Rule

from api import auth

IGNORED_ENDPOINTS = {"static", "api-docs.openapi_json"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# From docs/api.md: routes that need a key. A sanity check for the introspection below.
DOCUMENTED_KEYED = {
    ("GET", "/v1/purposes"), ("PUT", "/v1/purposes/{code}"), ("POST", "/v1/consents"),
    ("GET", "/v1/subjects/{subject_id}/consents"), ("GET", "/v1/subjects/{subject_id}/consents/history"),
    ("GET", "/v1/subjects/{subject_id}/unsubscribe-link"),
    ("POST", "/v1/consents/check"), ("GET", "/v1/subjects"), ("GET", "/v1/audit/verify"),
}
DOCUMENTED_OPEN = {("GET", "/healthz"), ("GET", "/openapi.json")}


def openapi_path(rule: str) -> str:
    """Flask's ``/v1/x/<token>`` or ``<path:name>`` -> OpenAPI's ``/v1/x/{token}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def routes(app: Flask) -> list[tuple[str, str, Rule]]:
    """(METHOD, OpenAPI path, rule) for every route the app serves, but static files and the document."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in IGNORED_ENDPOINTS:
            continue
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            out.append((method, openapi_path(rule.rule), rule))
    return out


def needs_key(app: Flask, rule: Rule, method: str) -> bool:
    """Whether the view for ``method`` is wrapped by ``api.auth.requires``.

    Every decorator in the chain uses functools.wraps, which copies ``__qualname__``; the
    code object keeps the wrapper's own name (``requires.<locals>.decorate.<locals>.wrapper``).
    """
    view = app.view_functions[rule.endpoint]
    view_class = getattr(view, "view_class", None)
    func: Callable[..., Any] | None = getattr(view_class, method.lower(), None) if view_class else view
    while func is not None:
        code = getattr(func, "__code__", None)
        if code is not None and code.co_qualname.startswith("requires.") and code.co_filename == auth.__file__:
            return True
        func = getattr(func, "__wrapped__", None)
    return False


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.mimetype == "application/json"
    doc = r.get_json()
    assert isinstance(doc, dict)
    return doc


def test_openapi_json_is_a_valid_openapi_3_document(document: dict[str, Any]) -> None:
    assert str(document.get("openapi", "")).startswith("3."), document.get("openapi")
    validate(document)  # raises OpenAPIValidationError with the offending path


def test_every_route_is_described_with_its_methods(app: Flask, document: dict[str, Any]) -> None:
    paths = document["paths"]
    missing = [f"{method} {path}" for method, path, _ in routes(app)
               if method.lower() not in paths.get(path, {})]
    assert missing == [], f"routes missing from /openapi.json: {missing}"


def test_the_document_describes_no_route_the_app_does_not_serve(app: Flask, document: dict[str, Any]) -> None:
    served = {(method.lower(), path) for method, path, _ in routes(app)}
    verbs = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    described = {(verb, path) for path, item in document["paths"].items() for verb in item if verb in verbs}
    assert sorted(described - served) == []


def test_bearer_auth_scheme_is_declared(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"


def test_routes_behind_a_key_declare_bearer_auth_and_open_ones_do_not(app: Flask, document: dict[str, Any]) -> None:
    default = document.get("security", [])
    keyed = {(method, path) for method, path, rule in routes(app) if needs_key(app, rule, method)}
    assert keyed >= DOCUMENTED_KEYED, f"introspection missed {sorted(DOCUMENTED_KEYED - keyed)}"
    assert not DOCUMENTED_OPEN & keyed
    wrong = []
    for method, path, _ in routes(app):
        operation = document["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue  # reported by test_every_route_is_described_with_its_methods
        declared = any("bearerAuth" in requirement for requirement in operation.get("security", default))
        if declared != ((method, path) in keyed):
            wrong.append(f"{method} {path}: needs a key {(method, path) in keyed}, declares bearerAuth {declared}")
    assert wrong == []


def test_routes_behind_a_key_answer_401_without_one(app: Flask, client: FlaskClient) -> None:
    """The introspection agrees with behaviour: without a key, a keyed GET route says 401."""
    for method, path, rule in routes(app):
        if method != "GET" or not needs_key(app, rule, method):
            continue
        r = client.get(re.sub(r"\{[^}]+\}", "x", path))
        if r.status_code == 422:  # query arguments are parsed before the key is checked
            continue
        assert r.status_code == 401, f"GET {path}: {r.status_code}"
        assert set(r.get_json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(("rule", "expected"), [
    ("/v1/consents/confirm/<token>", "/v1/consents/confirm/{token}"),
    ("/v1/subjects/<subject_id>/consents", "/v1/subjects/{subject_id}/consents"),
    ("/static/<path:filename>", "/static/{filename}"),
    ("/v1/requests/<uuid:id>/verify", "/v1/requests/{id}/verify"),
    ("/healthz", "/healthz"),
])
def test_openapi_path_conversion(rule: str, expected: str) -> None:
    assert openapi_path(rule) == expected
