"""What ``/openapi.json`` says of answers that a view's success schema does not describe.

flask-smorest's ``Blueprint.alt_response`` and ``Blueprint.doc`` document a view by wrapping
it in one more function, which every request then calls. ``answers``, ``fails`` and
``described`` write the same documentation (the view's ``_apidoc``, which flask-smorest
reads when the blueprint is registered) and return the view itself: documenting costs a
request nothing.

Every error answer is the one envelope of :class:`api.errors.ErrorSchema`; a link that a
customer opens in a browser (``html=True``) answers its errors as a page instead.

:class:`SchemaPlugin` makes the document say what the request schemas check beyond what
apispec writes by itself: the control-character guards (as a ``pattern``), the keys of a
mapping (``propertyNames``), a Dict's size (``minProperties``), any JSON Schema keyword a
field names in ``metadata["openapi"]``, and rules across fields (:func:`schema_keywords`).
The document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12: 3.0 has no way to
say what the keys of an object must look like.
"""
from __future__ import annotations

import http
from collections.abc import Callable
from copy import deepcopy
from typing import Any, TypeVar

import flask_smorest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from marshmallow import Schema, fields

from api.errors import ErrorSchema
from privacy.policy.validation import no_control_characters, no_control_characters_but_newlines

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=type[Schema])

# What privacy.policy.validation's guards refuse, as ECMA-262 patterns (lone surrogates aside:
# JSON text that a schema validates cannot hold them).
ONE_LINE = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
RUNNING_TEXT = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
NOT_BLANK = "\\S"
"""A pattern for strings that must hold something besides white space."""
_GUARDS = {no_control_characters: ONE_LINE, no_control_characters_but_newlines: RUNNING_TEXT}
_SCHEMA_KEYWORDS: dict[type[Schema], dict[str, Any]] = {}

HTML_PAGE: dict[str, Any] = {"type": "string", "description": "an HTML page"}
ZIP_FILE: dict[str, Any] = {"type": "string", "format": "binary", "description": "a zip file"}

ERRORS = {
    400: "the body is not valid JSON",
    401: "no API key, or an unknown or revoked one",
    403: "the API key lacks the scope this route needs",
    404: "not found",
    409: "conflicts with the current state",
    410: "expired",
    413: "the body is larger than 16 MiB",
    415: "the body is not application/json",
    422: "a value is not valid; details names each field at fault",
    429: "rate limit reached; Retry-After says when to try again",
    503: "the database does not answer, or its schema is missing",
}
"""The error answers a route may document, with what each means."""


def answers(status: int, schema: type[Schema] | Schema | dict[str, Any] | None = None, *,
            content_type: str | None = None, description: str | None = None) -> Callable[[F], F]:
    """Document one more answer of a view (what ``Blueprint.alt_response`` writes), unwrapped."""

    def decorate(view: F) -> F:
        doc = deepcopy(getattr(view, "_apidoc", {}))
        entry: dict[str, Any] = {"description": description or http.HTTPStatus(status).phrase,
                                 "content_type": content_type}
        if schema is not None:
            entry["schema"] = schema() if isinstance(schema, type) else schema
        doc.setdefault("response", {}).setdefault("responses", {}).setdefault(status, []).append(entry)
        setattr(view, "_apidoc", doc)  # noqa: B010  (a function attribute mypy does not know)
        return view

    return decorate


def fails(*statuses: int, html: bool = False) -> Callable[[F], F]:
    """Document error answers: the Error envelope, and with ``html`` also a page for a browser."""

    def decorate(view: F) -> F:
        for status in statuses:
            view = answers(status, ErrorSchema, description=ERRORS[status])(view)
            if html:
                view = answers(status, HTML_PAGE, content_type="text/html", description=ERRORS[status])(view)
        return view

    return decorate


def described(**kwargs: Any) -> Callable[[F], F]:
    """What ``Blueprint.doc`` writes (``parameters=[...]``, ``requestBody=...``), unwrapped."""

    def decorate(view: F) -> F:
        doc = deepcopy(getattr(view, "_apidoc", {}))
        doc["manual_doc"] = {**doc.get("manual_doc", {}), **deepcopy(kwargs)}
        setattr(view, "_apidoc", doc)  # noqa: B010
        return view

    return decorate


def secured(view: F, scope: str | None) -> F:
    """Document that ``view`` needs an API key (of ``scope``): bearerAuth, 401 and 403."""
    view = described(security=[{"bearerAuth": []}])(view)
    return fails(401, 403)(view) if scope is not None else fails(401)(view)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, documenting the error answers that every route shares:
    503 while the database is away (any route); 400 and 413 for a JSON body, and 415 when
    that body is required (a route that also reads its query string never answers 415)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_shared_errors_doc)

    @staticmethod
    def _prepare_shared_errors_doc(doc: dict[str, Any], doc_info: dict[str, Any], **_: Any) -> dict[str, Any]:
        body = doc.get("requestBody", doc_info.get("manual_doc", {}).get("requestBody"))
        statuses: tuple[int, ...] = (503,)
        if body and "application/json" in body.get("content", {}):
            statuses = (400, 413, 415, 503) if body.get("required") else (400, 413, 503)
        responses = doc.setdefault("responses", {})
        for status in statuses:
            responses.setdefault(status, {"description": ERRORS[status],
                                          "content": {"application/json": {"schema": ErrorSchema}}})
        return doc


class Api(flask_smorest.Api):
    """flask-smorest's Api with this service's error envelope and :class:`SchemaPlugin`. No
    catch-all ``default`` answer: each route documents the statuses it answers."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        spec_kwargs = {"marshmallow_plugin": SchemaPlugin(), **kwargs.pop("spec_kwargs", {})}
        super().__init__(app, spec_kwargs=spec_kwargs, **kwargs)


def schema_keywords(keywords: dict[str, Any]) -> Callable[[S], S]:
    """Add JSON Schema keywords (rules across fields: ``oneOf``, ``if``/``then``) to what
    the document says of a request schema; a class decorator, or a call for a class
    defined elsewhere."""

    def register(cls: S) -> S:
        _SCHEMA_KEYWORDS[cls] = keywords
        return cls

    return register


def _guards(self: Any, field: fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """The control-character guards of privacy.policy.validation, as a pattern."""
    for guard, pattern in _GUARDS.items():
        if "pattern" not in ret and any(validator is guard for validator in field.validators):
            return {"pattern": pattern}
    return {}


def _mappings(self: Any, field: fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A Dict's key field as ``propertyNames``, its Length as the number of properties."""
    if not isinstance(field, fields.Dict):
        return {}
    out: dict[str, Any] = {}
    for length, size in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
        if length in ret:
            out[size] = ret.pop(length)
    if field.key_field is not None:
        out["propertyNames"] = self.field2property(field.key_field)
    return out


def _openapi_metadata(self: Any, field: fields.Field, **_: Any) -> dict[str, Any]:
    """Any JSON Schema keyword a field gives in ``metadata["openapi"]``."""
    keywords: dict[str, Any] = field.metadata.get("openapi", {})
    return keywords


class SchemaPlugin(MarshmallowPlugin):
    """apispec's marshmallow plugin, saying what the request schemas check (see above)."""

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        assert self.converter is not None
        for function in (_guards, _mappings, _openapi_metadata):
            self.converter.add_attribute_function(function)

    # MarshmallowPlugin's own signature, which already differs from apispec's BasePlugin.
    def schema_helper(self, name: Any, _: Any, schema: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        json_schema = super().schema_helper(name, _, schema=schema, **kwargs)
        cls = resolve_schema_cls(schema) if json_schema is not None else None
        if isinstance(cls, type) and cls in _SCHEMA_KEYWORDS:
            json_schema.update(deepcopy(_SCHEMA_KEYWORDS[cls]))
        return json_schema
