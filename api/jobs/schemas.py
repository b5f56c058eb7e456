"""Scheduled jobs: schedule, newest claimed run, next run."""
from __future__ import annotations

from marshmallow import Schema, fields


class JobSchema(Schema):
    id = fields.String()
    schedule = fields.String(metadata={"description": "e.g. 'every 5 s', 'daily at 02:00 Europe/Stockholm'"})
    last_run_at = fields.String(allow_none=True, metadata={"format": "date-time",
                                                           "description": "when the newest claimed run started"})
    last_outcome = fields.String(allow_none=True, metadata={"enum": ["running", "ok", "failed", None]})
    last_count = fields.Integer(allow_none=True, metadata={"description": "what the run did (its job's count)"})
    last_error = fields.String(allow_none=True)
    next_run_at = fields.String(metadata={"format": "date-time"})


class JobsSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema))
