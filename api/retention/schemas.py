"""Retention sweeps as officers and admins see them."""
from __future__ import annotations

from marshmallow import Schema, fields

from api.schema_fields import DateOrAwareDateTime
from privacy.policy.validation import StrictBoolean, StrictSchema


class RetentionRunRequestSchema(StrictSchema):
    dry_run = StrictBoolean(load_default=None, metadata={
        "description": "change nothing, list what would go (officers may only dry-run; admins run real by default)"})
    as_of = DateOrAwareDateTime(load_default=None, metadata={
        "description": "sweep as of this date (YYYY-MM-DD: its start, UTC) or time (ISO 8601, offset); default now"})


class ActionCountsSchema(Schema):
    delete = fields.Integer()
    anonymise = fields.Integer()
    minimise = fields.Integer()


class SubjectCountsSchema(Schema):
    deleted = fields.Integer()
    anonymised = fields.Integer()


class WouldGoSchema(Schema):
    subject_id = fields.String(metadata={"description": "the subject's pseudonymous id"})
    purpose = fields.String()
    action = fields.String(metadata={"enum": ["delete", "anonymise", "minimise"]})
    fields = fields.List(fields.String())  # type: ignore[assignment]


class SweepSummarySchema(Schema):
    run = fields.String()
    as_of = fields.String(metadata={"format": "date-time"})
    dry_run = fields.Boolean()
    counts = fields.Dict(keys=fields.String(), values=fields.Dict(
        keys=fields.String(), values=fields.Nested(ActionCountsSchema)),
        metadata={"description": "fields removed, by purpose, then category, then action"})
    subjects = fields.Nested(SubjectCountsSchema)
    fields_removed = fields.Integer()
    tasks_planned = fields.Integer()
    stopped = fields.Boolean()
    would_go = fields.List(fields.Nested(WouldGoSchema), metadata={"description": "dry run: at most 1,000"})
    would_go_total = fields.Integer()


class RetentionRunSchema(Schema):
    id = fields.String()
    started_at = fields.String(metadata={"format": "date-time"})
    finished_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    as_of = fields.String(metadata={"format": "date-time"})
    dry_run = fields.Boolean()
    actor = fields.String()
    status = fields.String(metadata={"enum": ["running", "done"]})
    summary = fields.Nested(SweepSummarySchema)


class RetentionRunsSchema(Schema):
    runs = fields.List(fields.Nested(RetentionRunSchema))
