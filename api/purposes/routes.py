"""Purposes: read by every client, changed by operators."""
from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from api.auth import current_principal, requires
from api.docs import Blueprint, described, fails
from api.purposes.schemas import PurposeBodySchema, PurposeListSchema, PurposeOutSchema
from api.schema_fields import whole_numbers
from api.services import current, now
from privacy.policy.catalogue import list_purposes, put_purpose
from privacy.policy.schema import CODE_PATTERN

blp = Blueprint("purposes", __name__, url_prefix="/v1/purposes", description="Purposes and notices")


@blp.route("")
class Purposes(MethodView):
    @requires(None)
    @blp.response(200, PurposeListSchema)
    def get(self) -> dict[str, Any]:
        """The declared purposes with their current notice version."""
        return {"purposes": list_purposes(current().database)}


@blp.route("/<code>", parameters=[{"in": "path", "name": "code", "required": True, "description": "lower_snake_case",
                                    "schema": {"type": "string", "pattern": f"^{CODE_PATTERN}$"}, "example": "push"}])
class PurposeItem(MethodView):
    @described(requestBody={"required": True, "content": {"application/json": {"schema": PurposeBodySchema, "example": {
        "name": {"en": "Push notifications"}, "legal_basis": "consent", "fields": ["email"],
        "notice": {"version": "v1", "text": "We send push notifications."}}}}})
    @fails(422)
    @requires("admin")
    @blp.response(200, PurposeOutSchema)
    def put(self, code: str) -> dict[str, Any]:
        """Create or replace a purpose; a changed notice text makes a new notice version."""
        put_purpose(current().database, current().policy, code, whole_numbers(request.get_json()),
                    current_principal().actor, now())
        return next(p for p in list_purposes(current().database) if p["code"] == code)

