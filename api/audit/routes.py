"""The audit trail: verify the hash chains of the consent ledger and the audit log."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api.auth import requires
from api.db import db
from api.docs import Blueprint
from privacy.ledger import audit_entries, verification
from privacy.policy.validation import StrictSchema

blp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit trail")


class VerifySchema(Schema):
    ok = fields.Boolean()
    chains = fields.List(fields.Dict())
    first_broken = fields.Dict(metadata={"description": "chain, seq and reason of the first broken entry"})


# Sequence numbers are 64-bit signed integers in both databases; a larger ``after`` would
# reach the driver, which cannot bind it.
MAX_SEQ = 2**63 - 1


class LogQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_SEQ), metadata={
        "description": "the last seq already read (0: from the start)"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AuditEntrySchema(Schema):
    seq = fields.Integer()
    actor = fields.String()
    action = fields.String()
    target = fields.String(allow_none=True)
    details = fields.Dict()
    at = fields.String()
    hash = fields.String()


class AuditLogSchema(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema))


@blp.route("/log")
class Log(MethodView):
    @requires("admin")
    @blp.arguments(LogQuerySchema, location="query")
    @blp.response(200, AuditLogSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Audit entries after sequence number ``after`` (page with the last ``seq``)."""
        return {"entries": audit_entries(db.session(), args["after"], args["limit"])}


@blp.route("/verify")
class Verify(MethodView):
    @requires("admin")
    @blp.response(200, VerifySchema)
    def get(self) -> dict[str, Any]:
        """Walk both chains; ``ok`` false with the first broken entry when tampered with."""
        return verification(db.session())
