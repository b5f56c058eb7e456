"""Officers' reports: retention figures and the record of processing activities (Art. 30)."""
from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from api.auth import requires
from api.docs import Blueprint, answers
from api.reports.schemas import (
    ProcessingQuerySchema,
    ProcessingRecordSchema,
    RetentionQuerySchema,
    RetentionReportSchema,
)
from api.services import current, now
from exports.reports.processing import processing_record
from exports.reports.render import CONTENT_TYPES, render_processing, render_retention
from exports.reports.retention import purpose_titles, retention_report

blp = Blueprint("reports", __name__, url_prefix="/v1", description="Reports for the data protection officer")

CSV: dict[str, Any] = {"type": "string", "description": "one table: section, purpose, category, measure, value"}
HTML: dict[str, Any] = {"type": "string", "description": "a printable page with inline SVG charts"}
PDF: dict[str, Any] = {"type": "string", "format": "binary", "description": "the HTML page as PDF"}


def _file(body: bytes, fmt: str, name: str) -> Response:
    response = Response(body, content_type=CONTENT_TYPES[fmt])
    if fmt in ("csv", "pdf"):
        response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@blp.route("/reports/retention")
class RetentionReport(MethodView):
    @requires("requests:manage")
    @blp.arguments(RetentionQuerySchema(), location="query")
    @answers(200, CSV, content_type="text/csv", description="format=csv")
    @answers(200, HTML, content_type="text/html", description="format=html")
    @answers(200, PDF, content_type="application/pdf", description="format=pdf")
    @blp.response(200, RetentionReportSchema)
    def get(self, args: dict[str, Any]) -> Response | dict[str, Any]:
        """Per purpose and data category: what is held and how old, what falls due, what was removed
        in the period; legal holds, consent per month, open and overdue requests. Counts only."""
        report = retention_report(current(), now(), args["since"], args["until"])
        if args["format"] == "json":
            return report
        titles = purpose_titles(current().policy, args["lang"])
        return _file(render_retention(report, args["format"], args["lang"], titles), args["format"], "retention")


@blp.route("/reports/processing")
class ProcessingRecord(MethodView):
    @requires("requests:manage")
    @blp.arguments(ProcessingQuerySchema(), location="query")
    @answers(200, HTML, content_type="text/html", description="format=html")
    @answers(200, PDF, content_type="application/pdf", description="format=pdf")
    @blp.response(200, ProcessingRecordSchema)
    def get(self, args: dict[str, Any]) -> Response | dict[str, Any]:
        """The record of processing activities (GDPR Art. 30(1)) from the policy file."""
        record = processing_record(current().policy, args["lang"])
        if args["format"] == "json":
            return record
        return _file(render_processing(record, args["format"]), args["format"], "processing")
