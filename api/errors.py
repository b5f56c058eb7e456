"""One error body for every failure: ``{"error": {"code", "message", "details"}}``."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from privacy.errors import ServiceError
from privacy.policy import flatten_errors

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 410: "gone", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "invalid_input", 429: "rate_limited",
}


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
        details: dict[str, list[str]] = {}
        for _location, errs in messages.items():
            for path, msgs in flatten_errors(errs).items():
                details[path.replace("_schema", "body") if path == "_schema" else path] = msgs
        if "_body" in details:
            details["body"] = details.pop("_body")
        first = next(iter(details))
        message = f"{first}: {details[first][0]}"
        code = "malformed_json" if status == 400 else HTTP_CODES.get(status, "error")
        return error_response(status, code, message, details)
    message = data.get("message") or error.description or error.name
    if status == 400 and "JSON" in str(message):
        return error_response(400, "malformed_json", f"body: {message}", {"body": [str(message)]})
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    return error_response(status, HTTP_CODES.get(status, "error"), str(message), {}, headers)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        return from_http_exception(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; it has been logged")
