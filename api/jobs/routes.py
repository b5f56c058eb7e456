"""The scheduled jobs: their schedules and how their newest runs went."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import requires
from api.docs import Blueprint
from api.jobs.registry import SHELL_JOBS
from api.jobs.schemas import JobsSchema
from api.services import current, now
from retention.scheduler import all_jobs
from retention.schedules import listing

blp = Blueprint("jobs", __name__, url_prefix="/v1", description="Scheduled jobs")


@blp.route("/jobs")
class Jobs(MethodView):
    @requires("requests:manage")
    @blp.response(200, JobsSchema)
    def get(self) -> dict[str, Any]:
        """Each scheduled job: its schedule, its newest run (when, outcome, count, error) and its next run."""
        return {"jobs": listing(current(), all_jobs(SHELL_JOBS), now())}
