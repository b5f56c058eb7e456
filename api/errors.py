"""One error body for every failure: ``{"error": {"code", "message", "details"}}``."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, has_request_context, jsonify, request
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from privacy.errors import ServiceError
from privacy.policy.file import flatten_errors

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 410: "gone", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "invalid_input", 429: "rate_limited",
}


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine-readable code, e.g. invalid_input"})
    message = fields.String(required=True, metadata={"description": "for people; names the first field at fault"})
    details = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True, metadata={
        "description": "field path (or header, or body) -> what is wrong with it; empty when no field is at fault"})


class ErrorSchema(Schema):
    """The body of every error answer (only documents it: error_response writes it)."""

    error = fields.Nested(ErrorBodySchema, required=True)


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(error: HTTPException) -> Response:
    """Map werkzeug/webargs exceptions (400 bad JSON, 422 schema errors, 413, 405 ...)."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        if status == 422 and "json" in messages and _has_non_json_body():
            # webargs reads no body that is not JSON and reports the fields as missing.
            return _unsupported_media_type()
        details: dict[str, list[str]] = {}
        for _location, errs in messages.items():
            for path, msgs in flatten_errors(errs).items():
                details[_tidy_path(path)] = msgs
        if "_body" in details:
            details["body"] = details.pop("_body")
        first = next(iter(details))
        message = f"{first}: {details[first][0]}"
        code = "malformed_json" if status == 400 else HTTP_CODES.get(status, "error")
        return error_response(status, code, message, details)
    if status == 415:
        return _unsupported_media_type()
    message = data.get("message") or _description(error)
    if status == 400 and "JSON" in str(message):
        return error_response(400, "malformed_json", f"body: {message}", {"body": [str(message)]})
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    return error_response(status, HTTP_CODES.get(status, "error"), str(message), {}, headers)


def _description(error: HTTPException) -> str:
    """The error's description; Flask hides why ``get_json`` failed behind a bare 400
    (outside debug mode) and keeps the reason in ``__cause__``."""
    cause = error.__cause__
    if isinstance(cause, HTTPException) and cause.code == error.code and cause.description:
        return str(cause.description)
    return str(error.description or error.name)


def _tidy_path(path: str) -> str:
    """``purposes.loyalty_club.value`` (marshmallow's Dict value errors) -> ``purposes.loyalty_club``."""
    if path.endswith(".value") and path.count(".") >= 2:
        return path[: -len(".value")]
    return path


def _has_non_json_body() -> bool:
    return has_request_context() and not request.is_json and bool(request.content_length or request.get_data())


def _unsupported_media_type() -> Response:
    message = "must be application/json"
    return error_response(415, "unsupported_media_type", f"Content-Type: {message}", {"Content-Type": [message]})


def _undecodable_json_body(error: Exception) -> bool:
    """JSON the decoder gave up on in ways webargs and Flask do not catch: nesting deeper
    than the recursion limit (RecursionError), an integer longer than Python's 4300-digit
    limit (ValueError). True only when raised by the ``json`` module on a request body."""
    if not isinstance(error, (RecursionError, ValueError)) or not has_request_context():
        return False
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return (module == "json" or module.startswith("json.")) and bool(request.get_data())


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        return from_http_exception(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if _undecodable_json_body(error):
            message = "Invalid JSON body (nested too deeply or a number too long)."
            return error_response(400, "malformed_json", f"body: {message}", {"body": [message]})
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; it has been logged")
