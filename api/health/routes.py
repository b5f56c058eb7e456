"""Liveness: the database answers."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from privacy.db import db

blp = Blueprint("health", __name__, url_prefix="/healthz", description="Health")


class HealthSchema(Schema):
    status = fields.String()


@blp.route("")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, Any]:
        """``{"status": "ok"}`` once the database answers."""
        db.session.execute(text("SELECT 1"))
        return {"status": "ok"}
