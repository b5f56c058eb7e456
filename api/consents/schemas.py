"""Shapes of the consent routes (validation of shape only; values are the service's job)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from api.docs import NOT_BLANK, ONE_LINE, schema_keywords
from api.schema_fields import (
    FastStringList,
    ShortKeyMap,
    StrictBoolean,
    StringOrMap,
    VerbatimSchema,
    no_control_characters,
)
from privacy.languages import LANGUAGES
from privacy.policy.validation import StrictSchema, strict_boolean

MAX_CHECK_INPUTS = 100_000


class SourceSchema(StrictSchema):
    form = fields.String(required=True, validate=[validate.Length(min=1, max=100), no_control_characters])
    channel = fields.String(required=True, validate=[validate.Length(min=1, max=50), no_control_characters])
    campaign = fields.String(validate=[validate.Length(min=1, max=100), no_control_characters])
    url = fields.Url(validate=validate.Length(max=500), metadata={
        "format": "uri", "description": "the form's page (http, https, ftp or ftps, with a host name); "
                                        "its query string and fragment are not kept"})

    @post_load
    def _strip_url(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # The ledger is append-only and outlives erasure: a sign-up page URL such as
        # ?email=anna@... must not carry personal data into it.
        if "url" in data:
            parts = urlsplit(data["url"])
            host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            data["url"] = urlunsplit((parts.scheme, host, parts.path, "", ""))
        return data


NOTICE_VERSION = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK}


class ConsentRequestSchema(StrictSchema):
    subject = ShortKeyMap(load_default=dict, metadata={
        "additionalProperties": {"type": "string"},
        "description": "personal fields from the catalogue (field name -> value); `email` identifies the subject"})
    subject_id = fields.UUID(metadata={"description": "update this subject instead of finding it by e-mail"})
    purposes = ShortKeyMap(strict_boolean, sizes=(1, 50), required=True)
    notice_version = StringOrMap(metadata={
        "description": "the notice version the form showed, or one per purpose",
        "oneOf": [NOTICE_VERSION, {"type": "object", "additionalProperties": NOTICE_VERSION}]})
    source = fields.Nested(SourceSchema, required=True)
    language = fields.String(validate=validate.OneOf(LANGUAGES), metadata={
        "description": "language of the double opt-in mail and the pages its links open; default the best "
                       "match of Accept-Language, else en"})


class PurposeStateSchema(Schema):
    status = fields.String(metadata={"enum": ["granted", "pending", "withdrawn", "declined", "expired"]})
    notice_version = fields.String(allow_none=True)
    recorded_at = fields.String()


class ConsentRecordedSchema(VerbatimSchema):  # the sign-up's answer: dumped as the service wrote it
    subject_id = fields.String()
    consents = fields.Dict(keys=fields.String(), values=fields.Nested(PurposeStateSchema))
    receipt = fields.Dict(metadata={"description": "Kantara CR v1.1 consent receipt; `signature` is a JWS "
                                    "(EdDSA) over the other members, key at /v1/receipts/keys"})
    dropped_fields = fields.List(fields.String())


@schema_keywords({"oneOf": [{"required": ["emails"]}, {"required": ["subject_ids"]}]})
class CheckRequestSchema(StrictSchema):
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=64))
    emails = FastStringList(MAX_CHECK_INPUTS, metadata={
        "type": "array", "items": {"type": "string", "maxLength": 320, "pattern": ONE_LINE}, "minItems": 1,
        "maxItems": MAX_CHECK_INPUTS, "description": "e-mails to check, echoed as given in allowed or denied"})
    subject_ids = FastStringList(MAX_CHECK_INPUTS, max_length=64, metadata={
        "type": "array", "items": {"type": "string", "maxLength": 64, "pattern": ONE_LINE}, "minItems": 1,
        "maxItems": MAX_CHECK_INPUTS, "description": "subject ids instead of e-mails"})
    include_unsubscribe_link = StrictBoolean(load_default=False, metadata={
        "description": "also answer `unsubscribe_links`: the one-click withdraw link (RFC 8058) of each "
                       "allowed input, for the `List-Unsubscribe` header of a mail to it; only for a purpose "
                       "given on consent. Without it (false) the answer has no such member"})

    @validates_schema
    def _one_list(self, data: dict[str, object], **_: object) -> None:
        if ("emails" in data) == ("subject_ids" in data):
            raise ValidationError("give exactly one of emails or subject_ids", "emails")


class CheckResultSchema(VerbatimSchema):  # up to 100,000 e-mails: dumped as the service wrote them
    purpose = fields.String()
    allowed = fields.List(fields.String())
    denied = fields.List(fields.String())
    unsubscribe_links = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "with include_unsubscribe_link only: each allowed input (as given) -> its one-click "
                       "withdraw link; a mail carries it as `List-Unsubscribe: <link>` with "
                       "`List-Unsubscribe-Post: List-Unsubscribe=One-Click`"})


class ConfirmedSchema(Schema):
    subject_id = fields.String()
    confirmed = fields.List(fields.String())


class WithdrawnSchema(Schema):
    subject_id = fields.String()
    purpose = fields.String()
    status = fields.String(metadata={
        "enum": ["granted", "pending", "withdrawn", "declined", "expired", "none"],
        "description": "withdrawn, or the state it already had (none: never given)"})


# The MAC in a withdraw link is base64url; anything else (non-ASCII above all, which
# hmac.compare_digest refuses with a TypeError) cannot be one. ^...$ rather than \A...\Z:
# the pattern is published in the OpenAPI document, where regexes are ECMA-262 (Python's $
# lets a trailing newline through, which no_control_characters then refuses).
LINK_TOKEN = validate.Regexp(r"^[A-Za-z0-9_-]+$", error="is not a link token (base64url)")


class WithdrawQuerySchema(StrictSchema):
    subject = fields.String(required=True, validate=[validate.Length(min=1, max=64), no_control_characters])
    purpose = fields.String(required=True, validate=[validate.Length(min=1, max=64), no_control_characters])
    token = fields.String(required=True, validate=[validate.Length(min=1, max=100), LINK_TOKEN,
                                                   no_control_characters])
    lang = fields.String(metadata={
        "description": "the page's language (sv or en; the mail's links name theirs); anything else: the "
                       "browser's Accept-Language"})
