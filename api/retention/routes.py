"""Retention sweeps: officers may preview one (dry run), admins run one; both list past runs."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import current_principal, requires
from api.docs import Blueprint
from api.jsonio import require_json_object
from api.retention.schemas import RetentionRunRequestSchema, RetentionRunsSchema, SweepSummarySchema
from api.services import current, now
from privacy.retention.sweep import RetentionService

blp = Blueprint("retention", __name__, url_prefix="/v1", description="Retention rules and minimisation")


@blp.route("/retention/runs")
class RetentionRuns(MethodView):
    @requires("requests:manage")
    @blp.response(200, RetentionRunsSchema)
    def get(self) -> dict[str, Any]:
        """The newest 50 retention sweeps (dry runs too), newest first: counts only."""
        return {"runs": RetentionService(current()).runs()}

    @requires("requests:manage")
    @blp.arguments(RetentionRunRequestSchema(), example={"dry_run": True})
    @blp.response(200, SweepSummarySchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Sweep every subject against the purposes' retention rules now (or ``as_of``). An officer
        gets a dry run (what would go); only an admin key may run a real one, and does by default."""
        require_json_object()
        principal = current_principal()
        return RetentionService(current()).requested(args["as_of"] or now(), args["dry_run"], principal.may("admin"),
                                                     principal.actor)
