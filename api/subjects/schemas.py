from __future__ import annotations

from marshmallow import Schema, validate
from marshmallow import fields as mf

from api.consents.schemas import PurposeStateSchema
from privacy.policy.validation import StrictSchema, no_control_characters


class SubjectQuerySchema(StrictSchema):
    email = mf.String(required=True, validate=validate.Length(min=1, max=320),
                      metadata={"format": "email", "example": "anna@example.se"})


class SubjectSchema(Schema):
    id = mf.String()
    fields = mf.Dict(keys=mf.String(), values=mf.String(), metadata={"description": "decrypted"})  # type: ignore[assignment]
    created_at = mf.String()
    restricted = mf.Boolean()


class SubjectConsentsSchema(Schema):
    subject_id = mf.String()
    consents = mf.Dict(keys=mf.String(), values=mf.Nested(PurposeStateSchema))


class HistoryEventSchema(Schema):
    purpose = mf.String()
    status = mf.String()
    event = mf.String(metadata={"enum": ["granted", "withdrawn", "declined", "confirmed", "expired"]})
    notice_version = mf.String(allow_none=True)
    text_hash = mf.String(allow_none=True)
    recorded_at = mf.String()
    source = mf.Dict()
    hash = mf.String()


class HistorySchema(Schema):
    subject_id = mf.String()
    events = mf.List(mf.Nested(HistoryEventSchema))


class UnsubscribeLinkQuerySchema(StrictSchema):
    purpose = mf.String(required=True, validate=[validate.Length(min=1, max=64), no_control_characters],
                        metadata={"description": "a declared purpose given on consent", "example": "marketing_email"})


class UnsubscribeLinkSchema(Schema):
    subject_id = mf.String()
    purpose = mf.String()
    url = mf.String(metadata={"format": "uri", "description": "the one-click withdraw link: a GET shows a page "
                                                              "with one button, a POST withdraws at once"})
    list_unsubscribe = mf.String(metadata={"description": "the `List-Unsubscribe` header's value: `<url>`"})
    list_unsubscribe_post = mf.String(metadata={
        "enum": ["List-Unsubscribe=One-Click"], "description": "the `List-Unsubscribe-Post` header's value"})
