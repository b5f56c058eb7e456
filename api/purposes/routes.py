"""Purposes: read by every client, changed by operators."""
from __future__ import annotations

import re
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import BEARER, current_principal, requires
from api.purposes.schemas import PurposeBodySchema, PurposeListSchema, PurposeOutSchema
from api.services import now
from privacy.context import current
from privacy.db import db, unit_of_work
from privacy.errors import InvalidInput
from privacy.policy import CODE_PATTERN
from privacy.purposes import list_purposes, put_purpose

blp = Blueprint("purposes", __name__, url_prefix="/v1/purposes", description="Purposes and notices")


@blp.route("")
class Purposes(MethodView):
    @requires(None)
    @blp.doc(**BEARER)
    @blp.response(200, PurposeListSchema)
    def get(self) -> dict[str, Any]:
        """The declared purposes with their current notice version."""
        return {"purposes": list_purposes(db.session())}


@blp.route("/<code>")
class PurposeItem(MethodView):
    @requires("admin")
    @blp.doc(**BEARER, requestBody={"content": {"application/json": {"schema": PurposeBodySchema}}})
    @blp.response(200, PurposeOutSchema)
    def put(self, code: str) -> dict[str, Any]:
        """Create or replace a purpose; a changed notice text makes a new notice version."""
        if not re.fullmatch(CODE_PATTERN, code):
            raise InvalidInput.field("code", "must be lower_snake_case, 1-64 characters")
        body = request.get_json()
        with unit_of_work() as session:
            put_purpose(session, current().policy, code, body, current_principal().actor, now())
        return next(p for p in list_purposes(db.session()) if p["code"] == code)

