"""Data-subject request routes: the customer's intake and links, the officer's queue."""
from __future__ import annotations

from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView
from marshmallow import ValidationError

from api.auth import current_principal, requires
from api.docs import HTML_PAGE, ZIP_FILE, Blueprint, answers, described, fails
from api.limits import email_key, limiter, setting
from api.links import LANG_QUERY, customer_language, link_result, page
from api.requests.schemas import (
    ExtendSchema,
    NoteSchema,
    OpenedSchema,
    OpenRequestSchema,
    QueueQuerySchema,
    QueueSchema,
    ReasonSchema,
    RequestSchema,
    SystemSchema,
    TokenQuerySchema,
    TokenSchema,
)
from api.services import now, request_service, task_service
from privacy.errors import InvalidInput
from privacy.requests.service import RequestCommand

blp = Blueprint("requests", __name__, url_prefix="/v1/requests", description="Data-subject requests (Art. 15-21)")


def _language(args: dict[str, Any]) -> str:
    return customer_language(args.get("language"))


def _token() -> str:
    """The token from a JSON body (API clients) or the link's query string (the page's form)."""
    try:
        if request.is_json:
            return str(TokenSchema().load(request.get_json())["token"])
        return str(TokenQuerySchema().load({"token": request.args.get("token", "")})["token"])
    except ValidationError as exc:
        messages = exc.normalized_messages().get("token", ["invalid"])
        raise InvalidInput.fields({"token": [str(m) for m in messages]}) from exc


# The mailed link's token: in the query string (the link page's button) or a JSON body.
TOKEN_QUERY = {"in": "query", "name": "token", "schema": {"type": "string", "maxLength": 200},
               "description": "the mailed token, as the link carries it (when the body is not JSON)"}
TOKEN_BODY = {"required": False, "content": {"application/json": {"schema": TokenSchema}}}


def _zip(name: str, chunks: Any) -> Response:
    response = Response(stream_with_context(chunks), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("")
class Requests(MethodView):
    @fails(429)
    @blp.arguments(OpenRequestSchema(), example={"type": "access", "email": "anna@example.se", "language": "sv"})
    @blp.response(202, OpenedSchema)
    @limiter.limit(setting("REQUEST_LIMIT_IP"))
    @limiter.limit(setting("REQUEST_LIMIT_EMAIL"), key_func=email_key, scope="requests-email")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """A customer opens a request; the same answer whether or not the e-mail is known."""
        cmd = RequestCommand(type=args["type"], email=args["email"], language=_language(args),
                             changes=args.get("changes"), purposes=args.get("purposes"))
        return request_service().open(cmd, now())

    @requires("requests:manage")
    @blp.arguments(QueueQuerySchema, location="query")
    @blp.response(200, QueueSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The officer's queue, soonest deadline first; filters status, type, overdue, due_before."""
        rows = request_service().queue(now(), status=args.get("status"), type_=args.get("type"),
                                       overdue=args.get("overdue"), due_before=args.get("due_before"),
                                       limit=args["limit"])
        return {"requests": rows}


@blp.route("/<request_id>")
class OneRequest(MethodView):
    @fails(404)
    @requires("requests:manage")
    @blp.response(200, RequestSchema)
    def get(self, request_id: str) -> dict[str, Any]:
        """One request with each system's status and its history."""
        return request_service().get(request_id)


@blp.route("/<request_id>/verify")
class Verify(MethodView):
    @described(parameters=[LANG_QUERY])
    @blp.response(200, HTML_PAGE, content_type="text/html",
                  description="a page with a button; verifies nothing by itself")
    def get(self, request_id: str) -> Response:
        """The page the verification mail links to. Mail scanners that prefetch it verify nothing."""
        return page("request.verify")

    @described(parameters=[TOKEN_QUERY, LANG_QUERY], requestBody=TOKEN_BODY)
    @answers(200, HTML_PAGE, content_type="text/html", description="the page, for a browser")
    @fails(404, 409, 410, html=True)
    @fails(422, 429)
    @blp.response(200, RequestSchema)
    @limiter.limit(setting("VERIFY_LIMIT_IP"))
    def post(self, request_id: str) -> Response | dict[str, Any]:
        """Verify with the mailed token (JSON ``{"token"}`` or the link's query string)."""
        token = _token()
        return link_result(lambda: request_service().verify(request_id, token, now()), "request.verified")


@blp.route("/<request_id>/extend")
class Extend(MethodView):
    @fails(404, 409)
    @requires("requests:manage")
    @blp.arguments(ExtendSchema(), example={"days": 30, "reason": "We wait for the archive system's export."})
    @blp.response(200, RequestSchema)
    def post(self, args: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Extend the deadline once, by 1-61 days, within the first month (Art. 12(3)); the reason is mailed."""
        return request_service().extend(request_id, args["days"], args["reason"], current_principal().actor, now())


@blp.route("/<request_id>/reject")
class Reject(MethodView):
    @fails(404, 409)
    @requires("requests:manage")
    @blp.arguments(ReasonSchema())
    @blp.response(200, RequestSchema)
    def post(self, args: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Refuse the request; the reason and the right to complain are mailed."""
        return request_service().reject(request_id, args["reason"], current_principal().actor, now())


@blp.route("/<request_id>/lift-restriction")
class LiftRestriction(MethodView):
    @fails(404, 409)
    @requires("requests:manage")
    @blp.arguments(ReasonSchema())
    @blp.response(200, RequestSchema)
    def post(self, args: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Lift a restriction (Art. 18(3)): the customer is mailed first."""
        return request_service().lift_restriction(request_id, args["reason"], current_principal().actor, now())


@blp.route("/<request_id>/package")
class Package(MethodView):
    @fails(404, 410)
    @requires("requests:manage")
    @blp.response(200, ZIP_FILE, content_type="application/zip", description="the access package")
    def get(self, request_id: str) -> Response:
        """The officer downloads the access or portability package."""
        name, chunks = request_service().package_for_officer(request_id, current_principal().actor, now())
        return _zip(name, chunks)


@blp.route("/<request_id>/download")
class Download(MethodView):
    @described(parameters=[LANG_QUERY])
    @blp.response(200, HTML_PAGE, content_type="text/html", description="a page with a download button")
    def get(self, request_id: str) -> Response:
        """The customer's download link: a page; the button downloads (the link works a few times)."""
        return page("request.download")

    @described(parameters=[TOKEN_QUERY, LANG_QUERY], requestBody=TOKEN_BODY)
    @fails(404, 409, 410, html=True)
    @fails(422, 429)
    @blp.response(200, ZIP_FILE, content_type="application/zip", description="the package")
    @limiter.limit(setting("VERIFY_LIMIT_IP"))
    def post(self, request_id: str) -> Response | dict[str, Any]:
        """Download the package with the mailed token; expires after 7 days, works 3 times."""
        token = _token()

        def download() -> Response:
            name, chunks = request_service().download(request_id, token, now())
            return _zip(name, chunks)

        return link_result(download, "request.download")


@blp.route("/<request_id>/systems/<name>/retry")
class RetrySystem(MethodView):
    @fails(404, 409)
    @requires("requests:manage")
    @blp.response(200, SystemSchema)
    def post(self, request_id: str, name: str) -> dict[str, Any]:
        """Run a failed system's task again: same task, no new request, the deadline does not move."""
        return task_service().retry(request_id, name, current_principal().actor, now())


@blp.route("/<request_id>/systems/<name>/done")
class SystemDone(MethodView):
    @fails(404, 409)
    @requires("requests:manage")
    @blp.arguments(NoteSchema(), example={"note": "Erased from the paper archive by Eva, box 14."})
    @blp.response(200, SystemSchema)
    def post(self, args: dict[str, Any], request_id: str, name: str) -> dict[str, Any]:
        """A manual system's task (or a failed one handled by hand) is done; the note is audited."""
        return task_service().mark_done(request_id, name, args["note"], current_principal().actor, now())
