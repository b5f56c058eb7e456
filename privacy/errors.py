"""Domain errors. The API maps each to its error body and status (docs/api.md, errors)."""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict[str, Any] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class InvalidInput(ServiceError):
    """A value that does not fit; ``details`` maps each field path to its messages."""

    status = 422
    code = "invalid_input"

    @classmethod
    def field(cls, path: str, message: str, code: str | None = None) -> InvalidInput:
        return cls(f"{path}: {message}", {path: [message]}, code)

    @classmethod
    def fields(cls, problems: dict[str, list[str]]) -> InvalidInput:
        first = next(iter(problems))
        return cls(f"{first}: {problems[first][0]}", problems)


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Gone(ServiceError):
    status = 410
    code = "gone"


class Unavailable(ServiceError):
    """The service cannot answer yet (the database is away or its schema is missing)."""

    status = 503
    code = "unavailable"
