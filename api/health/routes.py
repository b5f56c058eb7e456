"""Liveness: the database answers."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.db import db
from api.docs import Blueprint
from privacy.errors import Unavailable

blp = Blueprint("health", __name__, url_prefix="/healthz", description="Health")


class HealthSchema(Schema):
    status = fields.String()


@blp.route("")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, Any]:
        """``{"status": "ok"}`` once the database answers; 503 while it does not."""
        try:
            db.session.execute(text("SELECT 1"))
        except OperationalError as exc:
            db.session.rollback()
            raise Unavailable("the database does not answer") from exc
        return {"status": "ok"}
