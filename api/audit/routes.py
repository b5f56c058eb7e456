"""The audit trail: verify the hash chains of the consent ledger and the audit log."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.auth import BEARER, requires
from privacy.db import db
from privacy.ledger import verify_all

blp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit trail")


class VerifySchema(Schema):
    ok = fields.Boolean()
    chains = fields.List(fields.Dict())
    first_broken = fields.Dict(metadata={"description": "chain, seq and reason of the first broken entry"})


@blp.route("/verify")
class Verify(MethodView):
    @blp.doc(**BEARER)
    @blp.response(200, VerifySchema)
    @requires("admin")
    def get(self) -> dict[str, Any]:
        """Walk both chains; ``ok`` false with the first broken entry when tampered with."""
        reports = verify_all(db.session)
        body: dict[str, Any] = {"ok": all(r.ok for r in reports), "chains": [r.as_dict() for r in reports]}
        broken = next((r for r in reports if not r.ok), None)
        if broken is not None:
            body["first_broken"] = {"chain": broken.chain, "seq": broken.broken_seq, "reason": broken.reason}
        return body
