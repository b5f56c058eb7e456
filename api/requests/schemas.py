"""Shapes of the data-subject request routes (shape only; values are the service's job)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.docs import NOT_BLANK, schema_keywords
from api.schema_fields import WholeNumber, no_control_characters
from privacy.connectors.base import OUTCOMES
from privacy.languages import LANGUAGES
from privacy.policy.validation import StrictSchema
from privacy.requests.service import STATUSES, TASK_STATUSES, TYPES


def _only_for(kind: str, key: str, rule: dict[str, object]) -> dict[str, object]:
    """``key`` is required (and follows ``rule``) for a request of type ``kind``, absent otherwise."""
    return {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"required": [key], "properties": {key: rule}}, "else": {"not": {"required": [key]}}}


@schema_keywords({"allOf": [_only_for("rectification", "changes", {"minProperties": 1}),
                            _only_for("objection", "purposes", {})]})
class OpenRequestSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    email = fields.String(required=True, validate=validate.Length(min=1, max=320), metadata={"format": "email"})
    language = fields.String(validate=validate.OneOf(LANGUAGES), metadata={
        "description": "language of the mails and the access package; default from Accept-Language, else en"})
    changes = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)), values=fields.Raw(),
                          metadata={"description": "rectification only: field -> corrected value"})
    purposes = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                           validate=validate.Length(min=1, max=50),
                           metadata={"description": "objection only: the purposes objected to"})


class OpenedSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    due_at = fields.String()


class TokenSchema(StrictSchema):
    token = fields.String(required=True, validate=[validate.Length(min=1, max=200), no_control_characters])


class TokenQuerySchema(Schema):
    token = fields.String(load_default="", validate=validate.Length(max=200))


REASON = {"description": "mailed to the customer; not only white space", "openapi": {"pattern": NOT_BLANK}}


class ExtendSchema(StrictSchema):
    days = WholeNumber(required=True, validate=validate.Range(min=1, max=61))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata=REASON)


class ReasonSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata=REASON)


class QueueQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    type = fields.String(validate=validate.OneOf(TYPES))
    overdue = fields.Boolean()
    due_before = fields.AwareDateTime(default_timezone=None, metadata={"description": "ISO 8601 with offset"})
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class SystemSchema(Schema):
    name = fields.String()
    status = fields.String(metadata={"enum": list(TASK_STATUSES)})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={
        "enum": [*OUTCOMES, None],
        "description": "what a succeeded system did: done, not_found (nothing held there), accepted (queued, "
                       "no completion reported) or soft_deleted (the system completes the deletion later)"})
    operation = fields.String()
    finished_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class RequestSchema(Schema):
    id = fields.String()
    type = fields.String(metadata={"enum": list(TYPES)})
    status = fields.String(metadata={"enum": list(STATUSES)})
    received_at = fields.String()
    due_at = fields.String()
    extended_until = fields.String(allow_none=True)
    deadline = fields.String(metadata={"description": "extended_until if extended, else due_at"})
    overdue = fields.Boolean()
    verified_at = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)
    subject_id = fields.String(allow_none=True)
    language = fields.String(metadata={"enum": list(LANGUAGES)})
    extension_reason = fields.String()
    rejection_reason = fields.String()
    systems = fields.List(fields.Nested(SystemSchema))
    history = fields.List(fields.Dict(), metadata={"description": "every transition, from the audit log"})


class QueueSchema(Schema):
    requests = fields.List(fields.Nested(RequestSchema))


class NoteSchema(StrictSchema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                         metadata={"description": "what was done, by whom (kept in the audit log)"})
