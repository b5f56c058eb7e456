"""Connected systems as officers see them."""
from __future__ import annotations

from marshmallow import Schema, fields

from privacy.policy.validation import StrictSchema


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
