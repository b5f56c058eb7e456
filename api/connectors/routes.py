"""Connected systems: their state for officers, and the link a manual system's owner confirms with."""
from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from api.auth import current_principal, requires
from api.connectors.schemas import (
    ConnectorsQuerySchema,
    ConnectorsSchema,
    ReconcileRequestSchema,
    ReconcileRunSchema,
    ReconcileRunsSchema,
    TaskDoneSchema,
)
from api.docs import HTML_PAGE, Blueprint, answers, described, fails
from api.jsonio import require_json_object
from api.links import LANG_QUERY, link_result, page
from api.services import current, now, task_service
from privacy.tasks.reconcile import Reconciler, recent_runs

blp = Blueprint("connectors", __name__, url_prefix="/v1", description="Connected systems and their tasks")

TOKEN_QUERY = {"in": "query", "name": "token", "schema": {"type": "string", "maxLength": 200},
               "description": "the token the owner's mail carries"}


@blp.route("/connectors")
class Connectors(MethodView):
    @requires("requests:manage")
    @blp.arguments(ConnectorsQuerySchema(), location="query")
    @blp.response(200, ConnectorsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Each connected system: operations, last success and failure, tasks waiting and failed."""
        return {"connectors": task_service().connectors(test=args["test"])}


@blp.route("/connectors/reconciliations")
class Reconciliations(MethodView):
    @requires("requests:manage")
    @blp.response(200, ReconcileRunsSchema)
    def get(self) -> dict[str, Any]:
        """The newest 20 reconciliations of the systems' marketing opt-in state with the ledger, newest first."""
        return {"runs": recent_runs(current())}

    @requires("admin")
    @blp.arguments(ReconcileRequestSchema(), example={"repair": False})
    @blp.response(200, ReconcileRunSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Compare each system's marketing opt-in state with the ledger now (it calls every system
        once per person); with ``repair`` push our withdrawals. Opt-ins are never pushed."""
        require_json_object()
        return Reconciler(current()).run(args["repair"], now(), actor=current_principal().actor).as_dict()


@blp.route("/tasks/<task_id>/done")
class TaskDone(MethodView):
    @described(parameters=[LANG_QUERY])
    @blp.response(200, HTML_PAGE, content_type="text/html",
                  description="a page with a button; confirms nothing by itself")
    def get(self, task_id: str) -> Response:
        """The page a manual system's owner opens from the task mail. Mail scanners confirm nothing."""
        return page("task.confirm")

    @described(parameters=[TOKEN_QUERY, LANG_QUERY])
    @answers(200, HTML_PAGE, content_type="text/html", description="the page, for a browser")
    @fails(403, 404, 409, html=True)
    @blp.response(200, TaskDoneSchema)
    def post(self, task_id: str) -> Response | dict[str, Any]:
        """Confirm a manual system's task done (the link works once)."""
        token = request.args.get("token", "")[:200]
        return link_result(lambda: task_service().confirm_by_link(task_id, token, now()), "task.confirmed")
