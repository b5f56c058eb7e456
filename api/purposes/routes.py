"""Purposes: read by every client, changed by operators."""
from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import BEARER, current_principal, requires
from api.purposes.schemas import PurposeBodySchema, PurposeListSchema, PurposeOutSchema
from api.services import current, now
from privacy.policy.catalogue import list_purposes, put_purpose

blp = Blueprint("purposes", __name__, url_prefix="/v1/purposes", description="Purposes and notices")


@blp.route("")
class Purposes(MethodView):
    @requires(None)
    @blp.doc(**BEARER)
    @blp.response(200, PurposeListSchema)
    def get(self) -> dict[str, Any]:
        """The declared purposes with their current notice version."""
        return {"purposes": list_purposes(current().database)}


@blp.route("/<code>")
class PurposeItem(MethodView):
    @requires("admin")
    @blp.doc(**BEARER, requestBody={"content": {"application/json": {"schema": PurposeBodySchema}}})
    @blp.response(200, PurposeOutSchema)
    def put(self, code: str) -> dict[str, Any]:
        """Create or replace a purpose; a changed notice text makes a new notice version."""
        put_purpose(current().database, current().policy, code, request.get_json(), current_principal().actor, now())
        return next(p for p in list_purposes(current().database) if p["code"] == code)

