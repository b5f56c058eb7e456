"""Bearer API keys and scopes for HTTP views."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from api.docs import secured
from api.services import current
from privacy.apikeys import Principal, authenticate
from privacy.errors import Forbidden, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def requires(scope: str | None) -> Callable[[F], F]:
    """Require a valid key; with ``scope``, require that scope (``admin`` has every scope).

    The view's documentation then says so: the bearerAuth scheme, 401, and 403 with a scope.
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'",
                                   {"Authorization": ["missing or not a Bearer token"]})
            principal = authenticate(current().database, token.strip())
            if principal is None:
                raise Unauthorized("unknown or revoked API key", {"Authorization": ["unknown or revoked key"]})
            if scope is not None and not principal.may(scope):
                raise Forbidden(f"this key lacks the scope '{scope}'", {"scope": [f"'{scope}' required"]})
            g.principal = principal
            return view(*args, **kwargs)

        return secured(wrapper, scope)  # type: ignore[return-value]

    return decorate
