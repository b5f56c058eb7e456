"""Malformed input, sent to every route that takes input, with a key of the right scope.

The contract: "No request, however malformed, yields a 5xx", every error is
``{"error": {"code", "message", "details"}}`` with a 4xx that fits (400 malformed,
422 invalid field values, 413 too large ...), and a field error names the field. None of
these requests may change what is stored: every test snapshots the row counts and
contents of every table (after a valid sign-up, with all API keys already created), the
consent ledger's last hash and the mail drop, and compares after the bad request.

A case that is legitimately accepted says so in its id (``...-accepted-...``) and
asserts the 2xx instead; only the few that really store something skip the comparison.
A case that fails because of code outside the API's schemas and error mapping is
marked ``xfail(strict=True)`` with the cause.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from api import create_app
from api.db import db
from api.services import unit_of_work
from privacy.apikeys import create_key
from privacy.context import utcnow
from privacy.storage.models import ConsentEvent
from tests.conftest import SIGNUP, Database, _config

J = "application/json"
MB = 1024 * 1024
REMOVE = object()  # drop this key from the body
SURROGATE = "@@LONE-SURROGATE@@"  # replaced by the raw JSON escape \ud800 in the bytes sent

# Compared by row count only; every other table by count and a digest of its rows. The
# keys are all created before the snapshots, but a "last used" column would be no change.
COUNT_ONLY_TABLES = {"api_keys"}
# A refused request to a rate-limited route still counts against its limit: that is the point.
NOT_COMPARED_TABLES = {"rate_limit_counters"}


# --- the cases -----------------------------------------------------------------------

@dataclass
class Case:
    route: str                      # readable route label, first part of the test id
    kind: str                       # what is malformed, second part of the test id
    method: str
    path: str                       # "{sid}" is replaced by the signed-up subject's id
    scope: str | None               # writer / reader / officer / admin, None = no key
    json: Any = REMOVE              # sent as JSON when given
    data: bytes | None = None       # raw bytes otherwise
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: tuple[int, ...] = (422,)
    names: tuple[str, ...] = ()     # one of these must be named by message or details
    html: bool = False              # a browser page, not a JSON body
    stores: bool = False            # a legitimately accepted request that writes
    xfail: str | None = None        # reason, when the fix belongs outside the API layer
    xfail_if: bool = True           # condition for the xfail (e.g. PostgreSQL only)

    @property
    def id(self) -> str:
        return f"{self.route}:{self.kind}"


def body(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is REMOVE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def signup(**changes: Any) -> dict[str, Any]:
    return body(SIGNUP, **changes)


def person(**fields: Any) -> dict[str, Any]:
    """A sign-up whose subject has these fields changed (REMOVE drops one)."""
    return signup(subject=body(SIGNUP["subject"], **fields))


def with_surrogate(data: Any) -> bytes:
    """JSON bytes in which the SURROGATE marker becomes a lone surrogate escape."""
    text = json.dumps(data)
    assert SURROGATE in text
    return text.replace(SURROGATE, "\\ud800").encode()


CHECK = {"purpose": "marketing_email", "emails": ["anna@example.se"]}
PURPOSE = {"name": {"en": "Test purpose"}, "legal_basis": "consent", "fields": ["email"],
           "notice": {"version": "1", "text": "We test."}}
HUGE = b'{"x": "' + b"a" * (16 * MB + 1) + b'"}'
DEEP = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BIG_NUMBER = b'{"a": ' + b"9" * 5000 + b"}"
LONG_SEGMENT = "a" * 10_000

# Routes with a JSON body: label, method, path, scope, a required field (named when the
# body is absent), and a valid body to wrap in broken syntax.
JSON_ROUTES = [
    ("consents", "POST", "/v1/consents", "writer", "purposes", SIGNUP),
    ("check", "POST", "/v1/consents/check", "reader", "purpose", CHECK),
    ("purpose-put", "PUT", "/v1/purposes/test_purpose", "admin", "name", PURPOSE),
    ("reconcile-run", "POST", "/v1/connectors/reconciliations", "admin", "repair", {"repair": False}),
    ("retention-run", "POST", "/v1/retention/runs", "officer", "dry_run", {"dry_run": True}),
]


def syntax_cases() -> Iterator[Case]:
    """Broken JSON, wrong encodings and content types, wrong top-level types, too big."""
    for route, method, path, scope, required, valid in JSON_ROUTES:
        text = json.dumps(valid)
        case = functools.partial(Case, route, method=method, path=path, scope=scope)

        yield case("json-truncated", data=text[: len(text) // 2].encode(), content_type=J, status=(400,),
                   names=("body",))
        yield case("json-trailing-garbage", data=(text + " }garbage").encode(), content_type=J, status=(400,),
                   names=("body",))
        yield case("json-single-quotes", data=text.replace('"', "'").encode(), content_type=J, status=(400,),
                   names=("body",))
        yield case("json-trailing-comma", data=(text[:-1] + ",}").encode(), content_type=J, status=(400,),
                   names=("body",))
        yield case("json-comment", data=("/* hi */" + text).encode(), content_type=J, status=(400,),
                   names=("body",))
        yield case("json-nested-100000-deep", data=DEEP, content_type=J, status=(400,), names=("body",))
        yield case("json-5000-digit-number", data=BIG_NUMBER, content_type=J, status=(400,), names=("body",))
        yield case("json-invalid-utf8", data=text.encode()[:-2] + b'\xff\xfe"}', content_type=J, status=(400,),
                   names=("body",))
        # Not UTF-8: a parser may refuse the encoding (400) or read it and refuse the value (422).
        yield case("json-utf16", data=json.dumps({"unknown": 1}).encode("utf-16"), content_type=J,
                   status=(400, 422), names=("body", "unknown"))
        yield case("json-utf8-bom", data=b"\xef\xbb\xbf" + json.dumps({"unknown": 1}).encode(), content_type=J,
                   status=(400, 422), names=("body", "unknown"))
        yield case("body-empty-with-json-type", data=b"", content_type=J, status=(400, 422),
                   names=("body", required))
        yield case("body-whitespace-only", data=b"  \n ", content_type=J, status=(400, 422),
                   names=("body", required))
        yield case("no-body-no-content-type", status=(400, 415, 422), names=("body", "Content-Type", required))
        yield case("content-type-text-plain", data=text.encode(), content_type="text/plain", status=(415,),
                   names=("Content-Type",))
        yield case("content-type-form-urlencoded", data=b"purpose=marketing_email&emails=a%40b.se",
                   content_type="application/x-www-form-urlencoded", status=(415,), names=("Content-Type",))
        yield case("content-type-xml", data=b"<consent/>", content_type="application/xml", status=(415,),
                   names=("Content-Type",))
        yield case("top-level-array", json=[valid], status=(400, 422), names=("body",))
        yield case("top-level-string", json="consent", status=(400, 422), names=("body",))
        yield case("top-level-number", json=42, status=(400, 422), names=("body",))
        yield case("top-level-null", data=b"null", content_type=J, status=(400, 422), names=("body",))
        yield case("top-level-true", data=b"true", content_type=J, status=(400, 422), names=("body",))
        yield case("body-over-16MB", data=HUGE, content_type=J, status=(413,))


def consent_cases() -> Iterator[Case]:
    def case(kind: str, data: Any = REMOVE, status: tuple[int, ...] = (422,), names: tuple[str, ...] = (),
             raw: bytes | None = None, **kw: Any) -> Case:
        if raw is not None:
            kw.setdefault("content_type", J)
            return Case("consents", kind, "POST", "/v1/consents", "writer", data=raw,
                        status=status, names=names, **kw)
        return Case("consents", kind, "POST", "/v1/consents", "writer", json=data, status=status, names=names,
                    **kw)

    nan = json.dumps(signup(notice_version="@@NAN@@")).replace('"@@NAN@@"', "NaN").encode()
    yield case("notice_version-NaN-literal-parsed-then-refused", raw=nan, names=("notice_version",))
    inf = json.dumps(signup(purposes={"loyalty_club": "@@INF@@"})).replace('"@@INF@@"', "Infinity").encode()
    yield case("purposes-value-Infinity-literal", raw=inf, names=("purposes.loyalty_club",))
    dup = (b'{"subject": {"email": "dup@example.se"}, "purposes": {"loyalty_club": false}, '
           b'"purposes": {"loyalty_club": true}, "notice_version": "2026-11-01", '
           b'"source": {"form": "f", "channel": "web"}}')
    yield case("duplicate-keys-accepted-last-wins", raw=dup, status=(201,), stores=True)
    yield case("charset-latin1-declared-accepted-json-is-utf8",
               status=(201,), stores=True, raw=json.dumps(person(email="latin@example.se")).encode(),
               content_type="application/json; charset=latin-1")
    # unknown and missing fields
    yield case("unknown-top-level-field", signup(foo=1), names=("foo",))
    yield case("unknown-subject-field", person(shoe_size="42"), names=("subject.shoe_size",))
    yield case("unknown-source-field", signup(source={"form": "f", "channel": "web", "x": 1}), names=("source.x",))
    yield case("unknown-purpose", signup(purposes={"foo": True}), names=("purposes.foo",))
    yield case("purposes-missing", signup(purposes=REMOVE), names=("purposes",))
    yield case("source-missing", signup(source=REMOVE), names=("source",))
    yield case("source-channel-missing", signup(source={"form": "f"}), names=("source.channel",))
    yield case("neither-email-nor-subject_id", person(email=REMOVE), names=("subject.email",))
    yield case("subject-empty-object", signup(subject={}), names=("subject.email",))
    # wrong types
    yield case("subject-is-list", signup(subject=[SIGNUP["subject"]]), names=("subject",))
    yield case("subject-is-string", signup(subject="anna@example.se"), names=("subject",))
    yield case("subject-is-null", signup(subject=None), names=("subject",))
    yield case("purposes-is-string", signup(purposes="loyalty_club"), names=("purposes",))
    yield case("purposes-is-list", signup(purposes=["loyalty_club"]), names=("purposes",))
    yield case("purposes-is-null", signup(purposes=None), names=("purposes",))
    yield case("purposes-empty-object", signup(purposes={}), names=("purposes",))
    yield case("purposes-51-entries", signup(purposes={f"p{i}": True for i in range(51)}), names=("purposes",))
    yield case("purposes-empty-key", signup(purposes={"": True}), names=("purposes",))
    yield case("purposes-key-65-chars", signup(purposes={"p" * 65: True}), names=("purposes",))
    for label, value in [("string-true", "true"), ("int-1", 1), ("int-0", 0), ("null", None),
                         ("object", {"granted": True}), ("list", [True])]:
        yield case(f"purposes-value-{label}", signup(purposes={"loyalty_club": value}),
                   names=("purposes.loyalty_club",))
    yield case("source-is-string", signup(source="web"), names=("source",))
    yield case("source-form-int", signup(source={"form": 1, "channel": "web"}), names=("source.form",))
    yield case("source-form-empty", signup(source={"form": "", "channel": "web"}), names=("source.form",))
    yield case("source-form-101-chars", signup(source={"form": "f" * 101, "channel": "web"}), names=("source.form",))
    yield case("source-form-NUL", signup(source={"form": "sign\x00up", "channel": "web"}), names=("source.form",))
    yield case("source-channel-escape-char", signup(source={"form": "f", "channel": "we\x1bb"}),
               names=("source.channel",))
    yield case("source-campaign-lone-surrogate",
               raw=with_surrogate(signup(source={"form": "f", "channel": "web", "campaign": SURROGATE})),
               names=("source.campaign",))
    yield case("source-url-not-a-url", signup(source={"form": "f", "channel": "web", "url": "not a url"}),
               names=("source.url",))
    yield case("source-url-javascript", signup(source={"form": "f", "channel": "web", "url": "javascript:alert(1)"}),
               names=("source.url",))
    yield case("notice_version-int", signup(notice_version=20261101), names=("notice_version",))
    yield case("notice_version-empty", signup(notice_version=""), names=("notice_version",))
    yield case("notice_version-65-chars", signup(notice_version="v" * 65), names=("notice_version",))
    yield case("notice_version-list", signup(notice_version=["2026-11-01"]), names=("notice_version",))
    yield case("notice_version-unknown", signup(notice_version="1999-01-01"), names=("notice_version",))
    yield case("notice_version-NUL", signup(notice_version="2026-11-01\x00"), names=("notice_version",))
    yield case("notice_version-map-value-int", signup(notice_version={"loyalty_club": 1}),
               names=("notice_version.loyalty_club",))
    yield case("notice_version-map-missing-purposes", signup(notice_version={"foo": "1"}),
               names=("notice_version.loyalty_club",))
    yield case("subject_id-not-uuid", signup(subject_id="anna"), names=("subject_id",))
    yield case("subject_id-int", signup(subject_id=42), names=("subject_id",))
    yield case("subject_id-NUL", signup(subject_id="\x00" * 36), names=("subject_id",))
    yield case("subject_id-unknown-uuid", signup(subject_id="00000000-0000-4000-8000-000000000000", subject={}),
               status=(404,), names=("subject_id",))
    yield case("subject-key-65-chars", person(**{"k" * 65: "x"}), names=("subject",))
    # e-mail
    for label, value in [("no-at-sign", "anna.example.se"), ("space-inside", "an na@example.se"),
                         ("300-chars", "a" * 288 + "@example.se"), ("empty", ""), ("whitespace", "   "),
                         ("two-at-signs", "anna@@example.se"), ("no-domain", "anna@"), ("int", 42),
                         ("null", None), ("list", ["anna@example.se"]), ("object", {"v": "anna@example.se"}),
                         ("NUL", "anna\x00@example.se"), ("newline-header-injection", "anna@example.se\nBcc: x@y.se"),
                         ("zero-width-space", "an\u200bna@example.se"), ("rtl-override", "anna@\u202eexample.se")]:
        yield case(f"email-{label}", person(email=value), names=("subject.email",))
    yield case("email-lone-surrogate", raw=with_surrogate(person(email="anna" + SURROGATE + "@example.se")),
               names=("subject.email",))
    yield case("email-homoglyph-domain-accepted-valid-IDN", person(email="anna@ex\u0430mple.se"), status=(201,),
               stores=True)
    # dates
    for label, value in [("feb-30", "2026-02-30"), ("1800", "1800-01-01"), ("future", "2999-01-01"),
                         ("us-format", "01/04/1990"), ("basic-format", "19900401"), ("with-time", "1990-04-01T00:00"),
                         ("int", 19900401), ("empty", ""), ("month-13", "1990-13-01"), ("NUL", "1990-04-01\x00")]:
        yield case(f"birth_date-{label}", person(birth_date=value), names=("subject.birth_date",))
    # countries
    for label, value in [("XX", "XX"), ("alpha3-swe", "swe"), ("int", 12), ("empty", ""), ("name", "Sweden"),
                         ("null", None)]:
        yield case(f"country-{label}", person(country=value), names=("subject.country",))
    # names
    for label, value in [("NUL", "An\x00na"), ("bell-control-char", "An\x07na"), ("newline", "An\nna"),
                         ("tab", "An\tna"), ("DEL", "An\x7fna"), ("101-chars", "A" * 101), ("1MB", "A" * MB),
                         ("whitespace-only", "   "), ("empty", ""), ("bool", True), ("int", 7),
                         ("object", {"given": "Anna"}), ("private-use-char", "An\ue000na"),
                         ("unassigned-codepoint", "An\u0378na")]:
        yield case(f"first_name-{label}", person(first_name=value), names=("subject.first_name",))
    yield case("first_name-lone-surrogate", raw=with_surrogate(person(first_name="An" + SURROGATE)),
               names=("subject.first_name",))
    yield case("first_name-rtl-script-accepted-arabic-name", person(email="rtl@example.se", first_name="آنا"),
               status=(201,), stores=True)
    yield case("first_name-rtl-override-U+202E", person(email="rlo@example.se", first_name="Anna\u202eevil"),
               names=("subject.first_name",))
    yield case("first_name-zero-width-space", person(email="zw@example.se", first_name="An\u200bna"),
               names=("subject.first_name",))
    yield case("last_name-only-invisible-chars", person(email="inv@example.se", last_name="\u200b\ufeff"),
               names=("subject.last_name",))
    yield case("phone-letters", person(phone="call me"), names=("subject.phone",))
    yield case("postal_code-17-chars", person(postal_code="1" * 17), names=("subject.postal_code",))
    # headers
    yield case("Idempotency-Key-empty", signup(), headers={"Idempotency-Key": ""}, names=("Idempotency-Key",))
    yield case("Idempotency-Key-300-chars", signup(), headers={"Idempotency-Key": "k" * 300},
               names=("Idempotency-Key",))


def check_cases() -> Iterator[Case]:
    def case(kind: str, data: Any = REMOVE, status: tuple[int, ...] = (422,), names: tuple[str, ...] = (),
             raw: bytes | None = None, **kw: Any) -> Case:
        if raw is not None:
            kw.setdefault("content_type", J)
            return Case("check", kind, "POST", "/v1/consents/check", "reader", data=raw,
                        status=status, names=names, **kw)
        return Case("check", kind, "POST", "/v1/consents/check", "reader", json=data, status=status, names=names,
                    **kw)

    yield case("unknown-top-level-field", body(CHECK, limit=10), names=("limit",))
    yield case("purpose-missing", body(CHECK, purpose=REMOVE), names=("purpose",))
    yield case("purpose-int", body(CHECK, purpose=1), names=("purpose",))
    yield case("purpose-null", body(CHECK, purpose=None), names=("purpose",))
    yield case("purpose-list", body(CHECK, purpose=["marketing_email"]), names=("purpose",))
    yield case("purpose-empty", body(CHECK, purpose=""), names=("purpose",))
    yield case("purpose-unknown", body(CHECK, purpose="telepathy"), names=("purpose",))
    yield case("purpose-65-chars", body(CHECK, purpose="p" * 65), names=("purpose",))
    yield case("purpose-NUL", body(CHECK, purpose="marketing_email\x00"), names=("purpose",))
    yield case("both-emails-and-subject_ids", body(CHECK, subject_ids=["x"]), names=("emails", "subject_ids"))
    yield case("neither-emails-nor-subject_ids", body(CHECK, emails=REMOVE), names=("emails", "subject_ids"))
    yield case("emails-string", body(CHECK, emails="anna@example.se"), names=("emails",))
    yield case("emails-object", body(CHECK, emails={"0": "anna@example.se"}), names=("emails",))
    yield case("emails-null", body(CHECK, emails=None), names=("emails",))
    yield case("emails-empty-list", body(CHECK, emails=[]), names=("emails",))
    for label, value in [("int", 1), ("null", None), ("object", {"email": "a@b.se"}), ("list", ["a@b.se"]),
                         ("bool", True), ("321-chars", "a" * 310 + "@example.se"), ("NUL", "anna\x00@example.se"),
                         ("newline", "anna@example.se\n"), ("escape-char", "\x1b[31manna@example.se")]:
        yield case(f"emails-item-{label}", body(CHECK, emails=["ok@example.se", value]), names=("emails[1]",))
    yield case("emails-item-lone-surrogate", raw=with_surrogate(body(CHECK, emails=["ok@example.se", SURROGATE])),
               names=("emails[1]",))
    yield case("emails-100001-items", body(CHECK, emails=[f"u{i}@example.se" for i in range(100_001)]),
               names=("emails",))
    yield case("emails-item-not-an-email-accepted-reported-denied", body(CHECK, emails=["not an e-mail"]),
               status=(200,))
    yield case("subject_ids-string", body(CHECK, emails=REMOVE, subject_ids="x"), names=("subject_ids",))
    yield case("subject_ids-empty-list", body(CHECK, emails=REMOVE, subject_ids=[]), names=("subject_ids",))
    yield case("subject_ids-item-int", body(CHECK, emails=REMOVE, subject_ids=[42]), names=("subject_ids[0]",))
    yield case("subject_ids-item-65-chars", body(CHECK, emails=REMOVE, subject_ids=["a" * 65]),
               names=("subject_ids[0]",))
    yield case("subject_ids-item-NUL", body(CHECK, emails=REMOVE, subject_ids=["\x00" * 36]),
               names=("subject_ids[0]",))
    yield case("subject_ids-item-lone-surrogate", raw=with_surrogate(body(CHECK, emails=REMOVE,
                                                                          subject_ids=[SURROGATE])),
               names=("subject_ids[0]",))
    yield case("subject_ids-item-not-uuid-accepted-reported-denied", body(CHECK, emails=REMOVE, subject_ids=["anna"]),
               status=(200,))
    for label, value in [("string-yes", "yes"), ("string-true", "true"), ("int-1", 1), ("null", None),
                         ("list", [True])]:
        yield case(f"include_unsubscribe_link-{label}", body(CHECK, include_unsubscribe_link=value),
                   names=("include_unsubscribe_link",))
    yield case("include_unsubscribe_link-for-a-contract-purpose", body(CHECK, purpose="loyalty_club",
                                                                       include_unsubscribe_link=True),
               names=("purpose",))


def purpose_cases() -> Iterator[Case]:
    def case(kind: str, data: Any = REMOVE, status: tuple[int, ...] = (422,), names: tuple[str, ...] = (),
             raw: bytes | None = None, path: str = "/v1/purposes/test_purpose", **kw: Any) -> Case:
        if raw is not None:
            kw.setdefault("content_type", J)
            return Case("purpose-put", kind, "PUT", path, "admin", data=raw, status=status,
                        names=names, **kw)
        return Case("purpose-put", kind, "PUT", path, "admin", json=data, status=status, names=names, **kw)

    yield case("unknown-top-level-field", body(PURPOSE, colour="red"), names=("colour",))
    yield case("code-in-body", body(PURPOSE, code="test_purpose"), names=("code",))
    yield case("unknown-notice-field", body(PURPOSE, notice={"version": "1", "text": "t", "x": 1}), names=("notice.x",))
    yield case("name-missing", body(PURPOSE, name=REMOVE), names=("name",))
    yield case("name-string", body(PURPOSE, name="Test"), names=("name",))
    yield case("name-empty-value", body(PURPOSE, name={"en": ""}), names=("name",))
    yield case("name-language-key-1-char", body(PURPOSE, name={"e": "Test"}), names=("name",))
    yield case("name-value-int", body(PURPOSE, name={"en": 5}), names=("name",))
    yield case("legal_basis-missing", body(PURPOSE, legal_basis=REMOVE), names=("legal_basis",))
    yield case("legal_basis-unknown", body(PURPOSE, legal_basis="whim"), names=("legal_basis",))
    yield case("legal_basis-int", body(PURPOSE, legal_basis=6), names=("legal_basis",))
    yield case("fields-missing", body(PURPOSE, fields=REMOVE), names=("fields",))
    yield case("fields-string", body(PURPOSE, fields="email"), names=("fields",))
    yield case("fields-unknown-entry", body(PURPOSE, fields=["email", "shoe_size"]), names=("fields",))
    yield case("fields-item-int", body(PURPOSE, fields=[1]), names=("fields",))
    yield case("consent_valid_days-negative", body(PURPOSE, consent_valid_days=-1), names=("consent_valid_days",))
    yield case("consent_valid_days-NaN", raw=json.dumps(body(PURPOSE, consent_valid_days="@N@")).replace(
        '"@N@"', "NaN").encode(), names=("consent_valid_days",))
    yield case("double_opt_in-on-contract-basis", body(PURPOSE, legal_basis="contract", double_opt_in=True,
                                                       notice=REMOVE), names=("double_opt_in",))
    yield case("notice-text-missing", body(PURPOSE, notice={"version": "1"}), names=("notice.text",))
    yield case("notice-version-int", body(PURPOSE, notice={"version": 1, "text": "t"}), names=("notice.version",))
    yield case("notice-string", body(PURPOSE, notice="We test."), names=("notice",))
    yield case("retention-period-string", body(PURPOSE, retention={"period_days": "x", "after": "withdrawal",
                                                                   "action": "delete"}),
               names=("retention.period_days",))
    yield case("recipients-string", body(PURPOSE, recipients="everyone"), names=("recipients",))
    yield case("description-2001-chars", body(PURPOSE, description="d" * 2001), names=("description",))
    yield case("double_opt_in-string-yes", body(PURPOSE, double_opt_in="yes"), names=("double_opt_in",))
    yield case("gpc_opt_out-int-1", body(PURPOSE, gpc_opt_out=1), names=("gpc_opt_out",))
    yield case("consent_valid_days-string", body(PURPOSE, consent_valid_days="30"), names=("consent_valid_days",))
    yield case("consent_valid_days-fraction", body(PURPOSE, consent_valid_days=1.5), names=("consent_valid_days",))
    yield case("name-value-NUL", body(PURPOSE, name={"en": "Te\x00st"}), names=("name.en",))
    yield case("name-value-lone-surrogate", raw=with_surrogate(body(PURPOSE, name={"en": SURROGATE})),
               names=("name.en",))
    yield case("description-escape-char", body(PURPOSE, description="\x1b[2J"), names=("description",))
    yield case("recipients-item-NUL", body(PURPOSE, recipients=["Acme\x00"]), names=("recipients",))
    yield case("notice-text-NUL", body(PURPOSE, notice={"version": "1", "text": "We\x00test"}),
               names=("notice.text",))
    yield case("notice-text-lone-surrogate", raw=with_surrogate(body(PURPOSE, notice={"version": "1",
                                                                                      "text": SURROGATE})),
               names=("notice.text",))
    yield case("notice-version-lone-surrogate", raw=with_surrogate(body(PURPOSE, notice={"version": SURROGATE,
                                                                                         "text": "t"})),
               names=("notice.version",))
    # the code in the path
    for label, code in [("uppercase-and-dash", "Bad-Code"), ("10000-chars", LONG_SEGMENT), ("NUL", "a%00b"),
                        ("non-ascii", "%C3%A5ngest"), ("invalid-utf8", "%FF"), ("space", "a%20b"),
                        ("dot-dot", "%2E%2E")]:
        yield case(f"code-{label}", PURPOSE, path=f"/v1/purposes/{code}", names=("code",))


def lookup_cases() -> Iterator[Case]:
    """GET /v1/subjects?email= -- never with a known e-mail: that lookup is audited by design."""
    def case(kind: str, query: str, status: tuple[int, ...] = (422,), names: tuple[str, ...] = ("email",)) -> Case:
        return Case("subjects-lookup", kind, "GET", "/v1/subjects" + query, "officer", status=status, names=names)

    yield case("email-missing", "")
    yield case("email-empty", "?email=")
    yield case("email-no-at-sign", "?email=anna.example.se")
    yield case("email-space-inside", "?email=an%20na@example.se")
    yield case("email-300-chars", "?email=" + "a" * 288 + "@example.se")
    yield case("email-5000-chars", "?email=" + "a" * 5000)
    yield case("email-NUL", "?email=anna%00@example.se")
    yield case("email-newline", "?email=anna@example.se%0A")
    yield case("email-zero-width-space", "?email=an%E2%80%8Bna@example.se")
    yield case("email-invalid-utf8", "?email=%FF")
    yield case("email-lone-surrogate-bytes-decoded-as-U+FFFD-not-found", "?email=%ED%A0%80@example.se",
               status=(404, 422), names=())
    yield case("unknown-param-ignored-unknown-email-not-found", "?email=nobody@example.se&admin=1",
               status=(404,), names=())
    yield case("email-given-twice-unknown-not-found", "?email=nobody@example.se&email=anna@example.se",
               status=(404,), names=())


SUBJECT_IDS = [("not-a-uuid", "anna"), ("10000-chars", LONG_SEGMENT), ("invalid-utf8", "%FF"),
               ("lone-surrogate-bytes", "%ED%A0%80"), ("dot-dot", "%2E%2E"), ("sql-ish", "1'%20OR%20'1'='1"),
               ("unknown-uuid", "00000000-0000-4000-8000-000000000000"), ("NUL", "a%00b")]


def subject_path_cases() -> Iterator[Case]:
    for route, suffix in [("subject-consents", "/consents"), ("subject-history", "/consents/history")]:
        for label, sid in SUBJECT_IDS:
            yield Case(route, f"id-{label}", "GET", f"/v1/subjects/{sid}{suffix}", "reader", status=(404, 422),
                       )
    for label, sid in SUBJECT_IDS:
        yield Case("subject-unsubscribe-link", f"id-{label}", "GET",
                   f"/v1/subjects/{sid}/unsubscribe-link?purpose=marketing_email", "reader", status=(404, 422))
    for label, query, names in [
            ("purpose-missing", "", ("purpose",)), ("purpose-empty", "?purpose=", ("purpose",)),
            ("purpose-65-chars", "?purpose=" + "p" * 65, ("purpose",)),
            ("purpose-NUL", "?purpose=marketing%00email", ("purpose",)),
            ("purpose-newline", "?purpose=marketing_email%0A", ("purpose",)),
            ("purpose-invalid-utf8", "?purpose=%FF", ("purpose",)),
            ("purpose-unknown", "?purpose=telepathy", ("purpose",)),
            ("purpose-contract-basis", "?purpose=loyalty_club", ("purpose",))]:
        yield Case("subject-unsubscribe-link", label, "GET", "/v1/subjects/{sid}/unsubscribe-link" + query,
                   "reader", names=names)


def link_cases() -> Iterator[Case]:
    """The mailed links need no key; with Accept: application/json errors are the JSON body."""
    accept = {"Accept": J}
    for label, token in [("unknown", "x" * 43), ("10000-chars", LONG_SEGMENT), ("NUL", "a%00b"),
                         ("invalid-utf8", "%FF"), ("lone-surrogate-bytes", "%ED%A0%80"), ("space", "%20"),
                         ("non-ascii", "%C3%A5%C3%A4%C3%B6")]:
        yield Case("confirm-post", f"token-{label}", "POST", f"/v1/consents/confirm/{token}", None, headers=accept,
                   status=(404, 410, 422), names=("token",))
    yield Case("confirm-post", "token-unknown-json-body-ignored", "POST", "/v1/consents/confirm/" + "x" * 43, None,
               data=b'{"broken', content_type=J, headers=accept, status=(404,), names=("token",))
    yield Case("confirm-post", "token-unknown-browser-gets-html-page", "POST", "/v1/consents/confirm/" + "x" * 43,
               None, headers={"Accept": "text/html"}, status=(404,), html=True)
    for label, token in [("unknown", "x" * 43), ("10000-chars", LONG_SEGMENT), ("NUL", "a%00b")]:
        yield Case("confirm-get", f"token-{label}-accepted-page-confirms-nothing", "GET",
                   f"/v1/consents/confirm/{token}", None, status=(200,), html=True)

    good = "subject={sid}&purpose=marketing_email&token=" + "A" * 27
    withdraw = "/v1/consents/withdraw?"
    bad_queries = [
        ("all-params-missing", "", ("subject", "purpose", "token")),
        ("token-missing", "subject={sid}&purpose=marketing_email", ("token",)),
        ("subject-missing", "purpose=marketing_email&token=abc", ("subject",)),
        ("all-params-empty", "subject=&purpose=&token=", ("subject", "purpose", "token")),
        ("token-200-chars", "subject={sid}&purpose=marketing_email&token=" + "A" * 200, ("token",)),
        ("token-non-ascii", "subject={sid}&purpose=marketing_email&token=%C3%A5%C3%A4", ("token",)),
        ("token-lone-surrogate-bytes", "subject={sid}&purpose=marketing_email&token=%ED%A0%80", ("token",)),
        ("token-NUL", "subject={sid}&purpose=marketing_email&token=ab%00cd", ("token",)),
        ("token-space", "subject={sid}&purpose=marketing_email&token=ab%20cd", ("token",)),
        ("token-trailing-newline", "subject={sid}&purpose=marketing_email&token=abcd%0A", ("token",)),
        ("subject-65-chars", "subject=" + "s" * 65 + "&purpose=marketing_email&token=abc", ("subject",)),
        ("subject-NUL", "subject=a%00b&purpose=marketing_email&token=abc", ("subject",)),
        ("purpose-65-chars", "subject={sid}&purpose=" + "p" * 65 + "&token=abc", ("purpose",)),
        ("purpose-newline", "subject={sid}&purpose=marketing_email%0A&token=abc", ("purpose",)),
    ]
    for method in ("GET", "POST"):
        route = f"withdraw-{method.lower()}"
        for label, query, names in bad_queries:
            yield Case(route, label, method, withdraw + query, None, headers=accept, names=names)
    yield Case("withdraw-get", "wrong-token-accepted-page-withdraws-nothing", "GET", withdraw + good, None,
               status=(200,), html=True)
    yield Case("withdraw-get", "tracking-params-accepted-page-withdraws-nothing", "GET",
               withdraw + good + "&utm_source=mail&utm_medium=email", None, status=(200,), html=True)
    yield Case("withdraw-post", "wrong-token-browser-gets-html-page", "POST", withdraw + good, None,
               headers={"Accept": "text/html"}, status=(404,), html=True)
    yield Case("withdraw-post", "wrong-token-json-client", "POST", withdraw + good, None, headers=accept,
               status=(404,), names=("token",))
    yield Case("withdraw-post", "wrong-subject-for-token-json-client", "POST",
               withdraw + good.replace("{sid}", "00000000-0000-4000-8000-000000000000"), None, headers=accept,
               status=(404,), names=("token",))


def request_cases() -> Iterator[Case]:
    """Data-subject requests: the customer's intake and links (no key), the officer's routes."""
    def intake(kind: str, data: Any, names: tuple[str, ...], status: tuple[int, ...] = (422,)) -> Case:
        return Case("requests-open", kind, "POST", "/v1/requests", None, json=data, status=status, names=names)

    ok = {"type": "access", "email": "anna@example.se"}
    yield intake("type-missing", body(ok, type=REMOVE), ("type",))
    yield intake("type-unknown", body(ok, type="delete_everything"), ("type",))
    yield intake("type-wrong-case", body(ok, type="ACCESS"), ("type",))
    yield intake("email-missing", body(ok, email=REMOVE), ("email",))
    yield intake("email-a-list", body(ok, email=["anna@example.se"]), ("email",))
    yield intake("email-no-at-sign", body(ok, email="anna.example.se"), ("email",))
    yield intake("email-400-chars", body(ok, email="a" * 390 + "@example.se"), ("email",))
    yield intake("email-NUL", body(ok, email="anna\x00@example.se"), ("email",))
    yield intake("language-unknown", body(ok, language="klingon"), ("language",))
    yield intake("unknown-key", body(ok, ssn="19900401-1234"), ("ssn",))
    yield intake("changes-without-rectification", body(ok, changes={"first_name": "A"}), ("changes",))
    yield intake("purposes-without-objection", body(ok, purposes=["loyalty_club"]), ("purposes",))
    rect = {"type": "rectification", "email": "anna@example.se"}
    yield intake("rectification-changes-missing", rect, ("changes",))
    yield intake("rectification-changes-empty", body(rect, changes={}), ("changes",))
    yield intake("rectification-changes-a-string", body(rect, changes="first_name=A"), ("changes",))
    yield intake("rectification-field-unknown", body(rect, changes={"shoe_size": 42}), ("changes.shoe_size",))
    yield intake("rectification-date-impossible", body(rect, changes={"birth_date": "1990-02-30"}),
                 ("changes.birth_date",))
    yield intake("rectification-name-too-long", body(rect, changes={"first_name": "A" * 101}),
                 ("changes.first_name",))
    yield intake("rectification-country-unknown", body(rect, changes={"country": "XX"}), ("changes.country",))
    obj = {"type": "objection", "email": "anna@example.se"}
    yield intake("objection-purposes-missing", obj, ("purposes",))
    yield intake("objection-purposes-empty", body(obj, purposes=[]), ("purposes",))
    yield intake("objection-purpose-unknown", body(obj, purposes=["telepathy"]), ("purposes.0",))
    yield intake("objection-purposes-not-strings", body(obj, purposes=[1]), ("purposes",))
    yield Case("requests-open", "form-encoded-body", "POST", "/v1/requests", None, data=b"type=access",
               content_type="application/x-www-form-urlencoded", status=(415, 422))

    unknown = "00000000-0000-4000-8000-000000000000"
    accept = {"Accept": J}
    for label, rid in [("not-a-uuid", "anna"), ("unknown-uuid", unknown), ("NUL", "a%00b"),
                       ("10000-chars", LONG_SEGMENT)]:
        yield Case("request-get", f"id-{label}", "GET", f"/v1/requests/{rid}", "officer", status=(404,))
        yield Case("request-verify", f"id-{label}", "POST", f"/v1/requests/{rid}/verify", None,
                   json={"token": "x" * 43}, status=(404,))
        yield Case("request-package", f"id-{label}", "GET", f"/v1/requests/{rid}/package", "officer",
                   status=(404,))
        yield Case("request-download", f"id-{label}", "POST", f"/v1/requests/{rid}/download?token=abc", None,
                   headers=accept, status=(404,))
    verify = f"/v1/requests/{unknown}/verify"
    yield Case("request-verify", "token-missing", "POST", verify, None, json={}, names=("token",))
    yield Case("request-verify", "token-a-number", "POST", verify, None, json={"token": 5}, names=("token",))
    yield Case("request-verify", "token-201-chars", "POST", verify, None, json={"token": "x" * 201},
               names=("token",))
    yield Case("request-verify", "broken-json", "POST", verify, None, data=b'{"token', content_type=J,
               status=(400,))
    yield Case("request-verify", "page-accepted-verifies-nothing", "GET", verify + "?token=abc", None,
               status=(200,), html=True)
    yield Case("request-download", "page-accepted-downloads-nothing", "GET",
               f"/v1/requests/{unknown}/download?token=abc", None, status=(200,), html=True)
    for route, path, good in [("request-extend", "extend", {"days": 10, "reason": "busy"}),
                              ("request-reject", "reject", {"reason": "unfounded"}),
                              ("request-lift", "lift-restriction", {"reason": "done"})]:
        url = f"/v1/requests/{unknown}/{path}"
        yield Case(route, "reason-missing", "POST", url, "officer", json=body(good, reason=REMOVE), names=("reason",))
        yield Case(route, "reason-empty", "POST", url, "officer", json=body(good, reason=""), names=("reason",))
        yield Case(route, "reason-2001-chars", "POST", url, "officer", json=body(good, reason="r" * 2001),
                   names=("reason",))
        yield Case(route, "unknown-key", "POST", url, "officer", json=body(good, colour="red"), names=("colour",))
        yield Case(route, "unknown-request", "POST", url, "officer", json=good, status=(404,))
    extend = f"/v1/requests/{unknown}/extend"
    for label, days in [("zero", 0), ("62", 62), ("negative", -1), ("string", "10"), ("float", 1.5), ("null", None)]:
        yield Case("request-extend", f"days-{label}", "POST", extend, "officer",
                   json={"days": days, "reason": "busy"}, names=("days",))
    for label, query, name in [("status-unknown", "?status=done", "status"), ("type-unknown", "?type=delete", "type"),
                               ("overdue-not-bool", "?overdue=maybe", "overdue"),
                               ("due-before-not-a-date", "?due_before=soon", "due_before"),
                               ("due-before-without-offset", "?due_before=2026-12-01T00:00:00", "due_before"),
                               ("limit-zero", "?limit=0", "limit"), ("limit-huge", "?limit=" + "9" * 50, "limit")]:
        yield Case("requests-queue", label, "GET", "/v1/requests" + query, "officer", names=(name,))
    done = f"/v1/requests/{unknown}/systems/crm/done"
    yield Case("request-system-done", "note-missing", "POST", done, "officer", json={}, names=("note",))
    yield Case("request-system-done", "note-empty", "POST", done, "officer", json={"note": ""}, names=("note",))
    yield Case("request-system-done", "note-2001-chars", "POST", done, "officer", json={"note": "n" * 2001},
               names=("note",))
    yield Case("request-system-done", "unknown-key", "POST", done, "officer", json={"note": "x", "colour": 1},
               names=("colour",))
    yield Case("request-system-done", "unknown-system", "POST", done, "officer", json={"note": "x"},
               status=(404,))
    yield Case("request-system-retry", "unknown-system", "POST", f"/v1/requests/{unknown}/systems/crm/retry",
               "officer", status=(404,))


def connector_cases() -> Iterator[Case]:
    yield Case("connectors", "test-not-bool", "GET", "/v1/connectors?test=maybe", "officer", names=("test",))
    yield Case("connectors", "unknown-query-param-accepted-ignored", "GET", "/v1/connectors?colour=red", "officer",
               status=(200,))
    runs = "/v1/connectors/reconciliations"
    for label, value in [("string-true", "true"), ("int-1", 1), ("null", None), ("list", [True]),
                         ("object", {"on": True})]:
        yield Case("reconcile-run", f"repair-{label}", "POST", runs, "admin", json={"repair": value},
                   names=("repair",))
    yield Case("reconcile-run", "unknown-key", "POST", runs, "admin", json={"repair": False, "colour": 1},
               names=("colour",))
    yield Case("reconcile-run", "officer-scope-refused", "POST", runs, "officer", json={"repair": False},
               status=(403,))
    yield Case("reconciliations", "unknown-query-param-accepted-ignored", "GET", runs + "?colour=red", "officer",
               status=(200,))
    unknown = "00000000-0000-4000-8000-000000000000"
    yield Case("task-done", "token-forged", "POST", f"/v1/tasks/{unknown}/done?token=abc", None,
               headers={"Accept": J}, status=(403,))
    yield Case("task-done", "token-missing", "POST", f"/v1/tasks/{unknown}/done", None, headers={"Accept": J},
               status=(403,))
    yield Case("task-done", "page-accepted-confirms-nothing", "GET", f"/v1/tasks/{unknown}/done?token=abc", None,
               status=(200,), html=True)


def job_cases() -> Iterator[Case]:
    yield Case("jobs", "unknown-query-param-accepted-ignored", "GET", "/v1/jobs?colour=%00", "officer",
               status=(200,))
    yield Case("jobs", "broken-json-body-accepted-ignored", "GET", "/v1/jobs", "officer", data=b'{"broken',
               content_type=J, status=(200,))
    yield Case("jobs", "reader-scope-refused", "GET", "/v1/jobs", "reader", status=(403,))


def retention_cases() -> Iterator[Case]:
    runs = "/v1/retention/runs"
    for label, value in [("string-true", "true"), ("int-1", 1), ("list", [True]), ("object", {"on": True})]:
        yield Case("retention-run", f"dry_run-{label}", "POST", runs, "officer", json={"dry_run": value},
                   names=("dry_run",))
    for label, value in [("not-a-date", "yesterday"), ("no-offset", "2030-01-01T00:00:00"),
                         ("no-such-day", "2030-02-30"), ("number", 20300101), ("empty", "")]:
        yield Case("retention-run", f"as_of-{label}", "POST", runs, "officer", json={"as_of": value},
                   names=("as_of",))
    yield Case("retention-run", "unknown-key", "POST", runs, "officer", json={"dry_run": True, "colour": 1},
               names=("colour",))
    yield Case("retention-run", "officer-real-run-refused", "POST", runs, "officer", json={"dry_run": False},
               status=(403,), names=("dry_run",))
    yield Case("retention-run", "writer-scope-refused", "POST", runs, "writer", json={"dry_run": True},
               status=(403,))
    yield Case("retention-runs", "unknown-query-param-accepted-ignored", "GET", runs + "?colour=red", "officer",
               status=(200,))


def report_cases() -> Iterator[Case]:
    retention, processing = "/v1/reports/retention", "/v1/reports/processing"
    for label, query in [("format-unknown", "?format=docx"), ("format-NUL", "?format=%00"),
                         ("lang-unknown", "?lang=fi"), ("since-not-a-time", "?since=yesterday"),
                         ("since-naive", "?since=2026-01-01T00:00:00"),
                         ("since-after-until", "?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"),
                         ("until-5000-digits", "?until=" + "9" * 5000)]:
        yield Case("report-retention", label, "GET", retention + query, "officer", names=(label.split("-")[0],))
    yield Case("report-retention", "writer-scope-refused", "GET", retention, "writer", status=(403,))
    yield Case("report-retention", "unknown-query-param-accepted-ignored", "GET", retention + "?colour=red",
               "officer", status=(200,))
    for label, query in [("format-csv-not-offered", "?format=csv"), ("lang-NUL", "?lang=%00")]:
        yield Case("report-processing", label, "GET", processing + query, "officer", names=(label.split("-")[0],))
    yield Case("report-processing", "reader-scope-refused", "GET", processing, "reader", status=(403,))


def other_cases() -> Iterator[Case]:
    yield Case("audit-verify", "unknown-query-param-accepted-ignored", "GET", "/v1/audit/verify?verbose=%00",
               "admin", status=(200,))
    yield Case("audit-verify", "broken-json-body-accepted-ignored", "GET", "/v1/audit/verify", "admin",
               data=b'{"broken', content_type=J, status=(200,))
    yield Case("purposes-list", "unknown-query-param-accepted-ignored", "GET", "/v1/purposes?lang=%FF%00", "reader",
               status=(200,))
    yield Case("purposes-list", "broken-json-body-accepted-ignored", "GET", "/v1/purposes", "reader",
               data=b"\xff\xfe{", content_type=J, status=(200,))
    for label, query in [("after-negative", "?after=-1"), ("after-not-int", "?after=x"), ("after-NUL", "?after=%00"),
                         ("limit-zero", "?limit=0"), ("limit-1001", "?limit=1001"), ("limit-float", "?limit=1.5"),
                         ("limit-5000-digits", "?limit=" + "9" * 5000)]:
        yield Case("audit-log", label, "GET", "/v1/audit/log" + query, "admin", names=(label.split("-")[0],))
    yield Case("audit-log", "unknown-query-param-accepted-ignored", "GET", "/v1/audit/log?colour=red", "admin",
               status=(200,))
    yield Case("any", "method-not-allowed", "DELETE", "/v1/consents", "admin", status=(405,))
    yield Case("any", "unknown-route", "GET", "/v1/nothing-here", "admin", status=(404,))


CASES = [*syntax_cases(), *consent_cases(), *check_cases(), *purpose_cases(), *lookup_cases(),
         *subject_path_cases(), *link_cases(), *request_cases(), *connector_cases(),
         *job_cases(), *retention_cases(), *report_cases(), *other_cases()]


def _params() -> list[Any]:
    out = []
    for case in CASES:
        marks = [pytest.mark.xfail(case.xfail_if, strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# --- the fixture: a signed-up subject, every key, a snapshot ---------------------------

@dataclass
class Env:
    app: Flask
    client: FlaskClient
    keys: dict[str | None, dict[str, str]]
    subject_id: str
    mail_dir: Path

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self.app.app_context():
            try:
                for table in db.metadata.sorted_tables:
                    if table.name in NOT_COMPARED_TABLES:
                        continue
                    rows = db.session.execute(select(table)).all()
                    if table.name in COUNT_ONLY_TABLES:
                        out[table.name] = len(rows)
                    else:
                        digest = hashlib.sha256("\n".join(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()
                        out[table.name] = (len(rows), digest)
                out["ledger_last_hash"] = db.session.scalar(
                    select(ConsentEvent.hash).order_by(ConsentEvent.seq.desc()).limit(1))
                out["ledger_events"] = db.session.scalar(select(func.count()).select_from(ConsentEvent))
            finally:
                db.session.remove()
        out["mails"] = sorted(p.name for p in self.mail_dir.glob("*.eml")) if self.mail_dir.exists() else []
        return out

    def send(self, case: Case) -> TestResponse:
        headers = {**self.keys[case.scope], **case.headers}
        kwargs: dict[str, Any] = {"method": case.method, "headers": headers}
        if case.json is not REMOVE:
            kwargs["json"] = case.json
        elif case.data is not None:
            kwargs["data"] = case.data
        if case.content_type is not None:
            kwargs["content_type"] = case.content_type
        return self.client.open(case.path.replace("{sid}", self.subject_id), **kwargs)


@pytest.fixture(scope="module")
def env(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One application for the module (an app per case would take minutes): every case
    snapshots before and after itself, so a case cannot hide behind another's changes."""
    tmp = tmp_path_factory.mktemp("malformed")
    # Every case counts against the public routes' rate limits: lift them for this module.
    app = create_app(_config(tmp / "instance", database.fresh(tmp), REQUEST_LIMIT_IP="100000 per minute",
                             REQUEST_LIMIT_EMAIL="100000 per minute", VERIFY_LIMIT_IP="100000 per minute"))
    keys: dict[str | None, dict[str, str]] = {None: {}}
    with app.app_context():
        for name, scope in [("writer", "consent:write"), ("reader", "consent:read"),
                            ("officer", "requests:manage"), ("admin", "admin")]:
            with unit_of_work() as session:
                _, token = create_key(session, f"malformed-{name}", [scope], "test", utcnow())
            keys[name] = {"Authorization": f"Bearer {token}"}
        db.session.remove()
    client = app.test_client()
    r = client.post("/v1/consents", json=SIGNUP, headers=keys["writer"])
    assert r.status_code == 201, r.get_json()
    yield Env(app, client, keys, r.get_json()["subject_id"], Path(app.instance_path) / "mail")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def assert_error_body(r: TestResponse) -> dict[str, Any]:
    assert r.mimetype == J, f"error is {r.mimetype}, not JSON: {r.get_data(as_text=True)[:200]!r}"
    payload = r.get_json()
    assert isinstance(payload, dict) and set(payload) == {"error"}, payload
    error = payload["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z][a-z_]*", error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    for key, messages in error["details"].items():
        assert isinstance(key, str), error
        assert isinstance(messages, list) and all(isinstance(m, str) for m in messages), error
    return error


def names_field(error: dict[str, Any], name: str) -> bool:
    if name in error["message"]:
        return True
    return any(key == name or key.startswith((name + ".", name + "[")) for key in error["details"])


@pytest.mark.parametrize("case", _params())
def test_malformed_input_is_refused_and_changes_nothing(env: Env, case: Case) -> None:
    before = env.snapshot()
    r = env.send(case)
    shown = r.get_data(as_text=True)[:300]
    assert r.status_code < 500, f"{r.status_code}: {shown}"
    assert r.status_code in case.status, f"expected {case.status}, got {r.status_code}: {shown}"
    if case.html:
        assert r.mimetype == "text/html", shown
    elif r.status_code >= 400:
        error = assert_error_body(r)
        if case.names:
            assert any(names_field(error, n) for n in case.names), (
                f"neither message nor details name any of {case.names}: {error}")
    else:
        assert r.mimetype == J, shown
    if not case.stores:
        assert env.snapshot() == before, "a refused request changed what is stored"


def test_cases_cover_every_route_that_takes_input(app: Flask) -> None:
    """A new route gets malformed-input cases here before it ships."""
    no_input = {"/healthz", "/openapi.json", "/v1/receipts/keys"}
    rules = {re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules()
             if r.endpoint != "static" and r.rule not in no_input}
    covered_paths = {c.path.split("?")[0] for c in CASES}

    def covered(rule: str) -> bool:
        pattern = re.escape(rule)
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        return any(re.fullmatch(pattern, p.replace("{sid}", "x")) for p in covered_paths)

    assert sorted(r for r in rules if not covered(r)) == []
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    assert len({c.kind for c in CASES}) >= 30
