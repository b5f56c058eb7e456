"""The reports' query parameters and JSON answers."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from privacy.policy.validation import StrictSchema

LANG = fields.String(load_default="en", validate=validate.OneOf(["en", "sv"]),
                     metadata={"description": "the language of the HTML and PDF texts"})


class RetentionQuerySchema(StrictSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "html", "pdf"]))
    lang = LANG
    since = fields.AwareDateTime(load_default=None, default_timezone=None, metadata={
        "description": "start of the period (with a UTC offset); default: 365 days before `until`"})
    until = fields.AwareDateTime(load_default=None, default_timezone=None, metadata={
        "description": "end of the period (with a UTC offset); default: now"})

    @validates_schema
    def _ordered(self, data: dict[str, object], **kwargs: object) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since >= until:  # type: ignore[operator]
            raise ValidationError("must be before until", "since")


class ProcessingQuerySchema(StrictSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "html", "pdf"]))
    lang = LANG


class FigureSchema(Schema):
    section = fields.String(metadata={"enum": ["held", "age", "due", "removed", "erasures", "holds", "consent",
                                               "requests"]})
    purpose = fields.String(metadata={"description": "the purpose; a hold's code (holds); a request type (requests)"})
    category = fields.String(metadata={"description": "the data category; a month YYYY-MM (consent, erasures, "
                                                      "holds)"})
    measure = fields.String()
    value = fields.Integer()


class RetentionReportSchema(Schema):
    report = fields.String()
    as_of = fields.String(metadata={"format": "date-time"})
    since = fields.String(metadata={"format": "date-time"})
    until = fields.String(metadata={"format": "date-time"})
    figures = fields.List(fields.Nested(FigureSchema))


class ControllerSchema(Schema):
    name = fields.String()
    contact = fields.String()
    dpo_email = fields.String()
    address = fields.String()


class ProcessingPurposeSchema(Schema):
    code = fields.String()
    name = fields.String()
    legal_basis = fields.String()
    data_categories = fields.List(fields.String())
    subject_categories = fields.List(fields.String())
    recipients = fields.List(fields.String())
    transfers = fields.List(fields.String())
    retention = fields.String()


class ProcessingRecordSchema(Schema):
    report = fields.String()
    language = fields.String()
    controller = fields.Nested(ControllerSchema)
    purposes = fields.List(fields.Nested(ProcessingPurposeSchema))
    security_measures = fields.List(fields.String())
