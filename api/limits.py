"""Rate limits of the routes anyone may call (Flask-Limiter): per client IP and per e-mail.

The e-mail key is the address's blind index, so the limiter's storage never holds an
address. Limits come from settings (``PRIVACY_REQUEST_LIMIT_IP`` and friends). Counters
live in the service's own database by default (``privacy-db://``, see
:mod:`api.ratelimits`), so every gunicorn worker shares one count; ``memory://``
(per worker) or a Redis URL also work.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask.globals import request_ctx
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from api import ratelimits  # noqa: F401  (registers the privacy-db:// storage)
from api.services import current
from privacy.policy.fields import FieldValueError, normalise

limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
LIMITER_STATE = "_limiter_request_context"
"""Where Flask-Limiter keeps a request's state (on the request context), once a limit is checked."""


def init_app(app: Flask) -> None:
    settings = app.config["PRIVACY"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings["RATELIMIT_STORAGE_URL"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
    # Every limit here is a decorator on its route, and the decorator checks it. The
    # app-wide hook Flask-Limiter also installs exists for default and application limits
    # (this service has none) and costs every other request about 0.05-0.1 ms, a fifth of
    # a consent check: take it out. A Flask-Limiter that renames it fails here, at start-up.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    # Its after-request hook (the X-RateLimit headers) and teardown hook then look up the
    # request's limiter state on every response, about 0.03 ms, though only a route with a
    # limit decorator ever creates that state: run them for those requests only.
    after = app.after_request_funcs[None]
    teardown = app.teardown_request_funcs[None]
    (inject,) = [f for f in after if isinstance(f, functools.partial) and f.args == (limiter,)]
    (release,) = [f for f in teardown if getattr(f, "__self__", None) is limiter]
    after[after.index(inject)] = when_limited(inject)
    teardown[teardown.index(release)] = when_limited(release)


def when_limited(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``hook``, run only in a request where a limit was checked (else the argument as is)."""

    @functools.wraps(hook)
    def run(arg: Any) -> Any:
        return hook(arg) if hasattr(request_ctx, LIMITER_STATE) else arg

    return run


def setting(name: str) -> Callable[[], str]:
    """A limit read from the application's settings at request time."""
    return lambda: str(current_app.config["PRIVACY"][name])


def email_key() -> str:
    """The blind index of the body's e-mail (or of nothing, for a body without one)."""
    body = request.get_json(silent=True)
    raw = body.get("email") if isinstance(body, dict) else None
    try:
        email = normalise("email", raw)
    except FieldValueError:
        return "email:none"
    return "email:" + current().crypto.blind_index(email).hex()
