"""Subjects: a person's consent state and history, and the officer's lookup by e-mail."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import current_principal, requires
from api.docs import Blueprint, fails
from api.services import consent_service, now
from api.subjects.schemas import (
    HistorySchema,
    SubjectConsentsSchema,
    SubjectQuerySchema,
    SubjectSchema,
    UnsubscribeLinkQuerySchema,
    UnsubscribeLinkSchema,
)

blp = Blueprint("subjects", __name__, url_prefix="/v1/subjects", description="Data subjects")


@blp.route("")
class Subjects(MethodView):
    @fails(404)
    @requires("requests:manage")
    @blp.arguments(SubjectQuerySchema, location="query")
    @blp.response(200, SubjectSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Find a subject by e-mail (exact, case-insensitive); the lookup is audited."""
        return consent_service().find_by_email(args["email"], current_principal().actor, now())


@blp.route("/<subject_id>/consents")
class SubjectConsents(MethodView):
    @fails(404)
    @requires("consent:read")
    @blp.response(200, SubjectConsentsSchema)
    def get(self, subject_id: str) -> dict[str, Any]:
        """The current state of every purpose for a subject."""
        return consent_service().states(subject_id, now())


@blp.route("/<subject_id>/consents/history")
class SubjectHistory(MethodView):
    @fails(404)
    @requires("consent:read")
    @blp.response(200, HistorySchema)
    def get(self, subject_id: str) -> dict[str, Any]:
        """Every ledger event of a subject, oldest first."""
        return consent_service().history(subject_id)


@blp.route("/<subject_id>/unsubscribe-link")
class SubjectUnsubscribeLink(MethodView):
    @fails(404)
    @requires("consent:read")
    @blp.arguments(UnsubscribeLinkQuerySchema, location="query")
    @blp.response(200, UnsubscribeLinkSchema)
    def get(self, args: dict[str, Any], subject_id: str) -> dict[str, str]:
        """The one-click withdraw link of a purpose (RFC 8058), for another system's mails to
        the subject: the `List-Unsubscribe` and `List-Unsubscribe-Post` headers to send."""
        return consent_service().unsubscribe_link(subject_id, args["purpose"])
