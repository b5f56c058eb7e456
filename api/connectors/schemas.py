"""Connected systems as officers see them."""
from __future__ import annotations

from marshmallow import Schema, fields

from privacy.policy.validation import StrictBoolean, StrictSchema


class ConnectionTestSchema(Schema):
    ok = fields.Boolean()
    detail = fields.String()


class ConnectorSchema(Schema):
    name = fields.String()
    type = fields.String()
    operations = fields.List(fields.String())
    last_success_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_failure_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_error = fields.String(allow_none=True)
    waiting = fields.Integer(metadata={"description": "tasks pending or in progress"})
    failed = fields.Integer()
    missing_secrets = fields.List(fields.String(), metadata={
        "description": "environment variables the entry names that are not set (names only)"})
    test_connection = fields.Nested(ConnectionTestSchema, metadata={"description": "with ?test=true"})


class ConnectorsSchema(Schema):
    connectors = fields.List(fields.Nested(ConnectorSchema))


class ConnectorsQuerySchema(StrictSchema):
    test = fields.Boolean(load_default=False, metadata={
        "description": "also check that each system answers with its credentials (calls every system)"})


class TaskDoneSchema(Schema):
    task = fields.String()
    system = fields.String()
    status = fields.String()


class DriftSchema(Schema):
    subject_id = fields.String(metadata={"description": "the subject's pseudonymous id (never an e-mail address)"})
    kind = fields.String(metadata={"enum": ["subscribed_but_withdrawn", "withdrawn_but_granted"]})


class ReconciledSystemSchema(Schema):
    purposes = fields.List(fields.String(), metadata={"description": "the purposes compared"})
    checked = fields.Integer(metadata={"description": "subjects looked up"})
    held = fields.Integer(metadata={"description": "of which the system holds"})
    drifts = fields.List(fields.Nested(DriftSchema), metadata={"description": "at most 10,000 listed"})
    subscribed_but_withdrawn = fields.Integer(metadata={
        "description": "subscribed at the system where we hold no granted consent"})
    withdrawn_but_granted = fields.Integer(metadata={
        "description": "unsubscribed at the system where we hold a granted consent (reported, never repaired)"})
    errors = fields.Integer(metadata={"description": "look-ups that failed"})
    error_reasons = fields.Dict(keys=fields.String(), values=fields.Integer(),
                                metadata={"description": "how often each reason (no personal data)"})
    repaired = fields.Integer(metadata={"description": "consent tasks planned to push our state"})
    stopped = fields.String(allow_none=True, metadata={"description": "why the system was not asked further"})


class ReconcileTotalsSchema(Schema):
    systems = fields.Integer()
    checked = fields.Integer()
    held = fields.Integer()
    drifts = fields.Integer()
    subscribed_but_withdrawn = fields.Integer()
    withdrawn_but_granted = fields.Integer()
    errors = fields.Integer()
    repaired = fields.Integer()


class ReconcileRunSchema(Schema):
    id = fields.String()
    started_at = fields.String(metadata={"format": "date-time"})
    finished_at = fields.String(metadata={"format": "date-time"})
    repair = fields.Boolean()
    totals = fields.Nested(ReconcileTotalsSchema)
    systems = fields.Dict(keys=fields.String(), values=fields.Nested(ReconciledSystemSchema),
                          metadata={"description": "per connected system compared, by name"})
    skipped = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "connected systems not compared, with why"})


class ReconcileRunsSchema(Schema):
    runs = fields.List(fields.Nested(ReconcileRunSchema))


class ReconcileRequestSchema(StrictSchema):
    repair = StrictBoolean(load_default=False, metadata={
        "description": "plan a consent task (withdrawn) for each person a system has subscribed without our "
                       "consent; opt-ins are never pushed"})
