"""Consent routes: record, check, and the mailed confirm / withdraw links."""
from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from api.auth import current_principal, requires
from api.consents.schemas import (
    CheckRequestSchema,
    CheckResultSchema,
    ConfirmedSchema,
    ConsentRecordedSchema,
    ConsentRequestSchema,
    WithdrawnSchema,
    WithdrawQuerySchema,
)
from api.docs import HTML_PAGE, Blueprint, answers, described, fails
from api.links import LANG_QUERY, customer_language, link_result, page
from api.services import consent_service, now
from privacy.consent.service import ConsentCommand
from privacy.errors import InvalidInput

blp = Blueprint("consents", __name__, url_prefix="/v1/consents", description="Recording and checking consent")

IDEMPOTENCY_KEY_MAX = 255
SIGNUP_EXAMPLE = {
    "subject": {"email": "anna@example.se", "first_name": "Anna", "country": "SE", "birth_date": "1990-04-01"},
    "purposes": {"loyalty_club": True, "marketing_email": True, "profiling": False},
    "notice_version": "2026-11-01", "source": {"form": "signup-web", "channel": "web"}}


@blp.route("")
class Consents(MethodView):
    @described(parameters=[
        {"in": "header", "name": "Idempotency-Key",
         "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
         "description": "a retry with the same key and body gets the first answer again"},
        {"in": "header", "name": "Sec-GPC", "schema": {"type": "string"},
         "description": "Global Privacy Control: `1` declines purposes marked gpc_opt_out"}])
    @fails(404, 409)
    @requires("consent:write")
    @blp.arguments(ConsentRequestSchema(), example=SIGNUP_EXAMPLE)
    @blp.response(201, ConsentRecordedSchema)
    def post(self, args: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Record a sign-up or preference change (``false`` for a granted purpose withdraws it)."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX):
            raise InvalidInput.field("Idempotency-Key", f"must be 1-{IDEMPOTENCY_KEY_MAX} characters")
        cmd = ConsentCommand(
            purposes=args["purposes"], source=args["source"], subject=args["subject"],
            subject_id=str(args["subject_id"]) if args.get("subject_id") else None,
            notice_version=args.get("notice_version"), gpc=request.headers.get("Sec-GPC", "").strip() == "1",
            language=customer_language(args.get("language")),
        )
        result = consent_service().record(
            cmd, now(), (current_principal().key_id, key) if key is not None else None)
        return result.body, 201


@blp.route("/check")
class Check(MethodView):
    @requires("consent:read")
    @blp.arguments(CheckRequestSchema(), example={"purpose": "marketing_email",
                                                  "emails": ["anna@example.se", "erik@example.se"]})
    @blp.response(200, CheckResultSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Who may be contacted for a purpose: up to 100,000 e-mails or subject ids at once
        (with ``include_unsubscribe_link``, also each allowed one's one-click withdraw link)."""
        return consent_service().check(args["purpose"], now(), emails=args.get("emails"),
                                       subject_ids=args.get("subject_ids"),
                                       unsubscribe_links=args["include_unsubscribe_link"])


@blp.route("/confirm/<token>")
class Confirm(MethodView):
    @described(parameters=[LANG_QUERY])
    @blp.response(200, HTML_PAGE, content_type="text/html",
                  description="a page with a button; confirms nothing by itself")
    def get(self, token: str) -> Response:
        """The page a double opt-in mail links to. Mail scanners that prefetch it confirm nothing."""
        return page("consent.confirm")

    @described(parameters=[LANG_QUERY])
    @answers(200, HTML_PAGE, content_type="text/html", description="the page, for a browser")
    @fails(404, 410, html=True)
    @blp.response(200, ConfirmedSchema)
    def post(self, token: str) -> Response | dict[str, Any]:
        """Confirm a double opt-in: the pending purposes become granted."""
        return link_result(lambda: consent_service().confirm(token, now()), "consent.confirmed")


@blp.route("/withdraw")
class Withdraw(MethodView):
    @blp.arguments(WithdrawQuerySchema, location="query")
    @blp.response(200, HTML_PAGE, content_type="text/html", description="a page with a button")
    def get(self, args: dict[str, Any]) -> Response:
        """The withdraw link of every marketing mail: a page with one button."""
        return page("consent.withdraw")

    @answers(200, HTML_PAGE, content_type="text/html", description="withdrawn (also RFC 8058 one-click POST)")
    @fails(404, html=True)
    @blp.arguments(WithdrawQuerySchema, location="query")
    @blp.response(200, WithdrawnSchema, description="the purpose's state after the click, for a JSON client")
    def post(self, args: dict[str, Any]) -> Response | dict[str, Any]:
        """Withdraw in one click (RFC 8058 ``List-Unsubscribe=One-Click`` posts here too)."""
        return link_result(lambda: consent_service().withdraw_by_link(
            args["subject"], args["purpose"], args["token"], now()), "consent.withdrawn")
