"""The public key that consent receipts are signed with."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from api.docs import Blueprint
from api.services import current

blp = Blueprint("receipts", __name__, url_prefix="/v1/receipts", description="Consent receipts")


class JwksSchema(Schema):
    keys = fields.List(fields.Dict(), metadata={"description": "JWK set (RFC 7517), OKP Ed25519 keys"})


@blp.route("/keys")
class Keys(MethodView):
    @blp.response(200, JwksSchema)
    def get(self) -> dict[str, Any]:
        """The JWK set that verifies receipt signatures (EdDSA, RFC 8037)."""
        return current().crypto.public_jwks()
