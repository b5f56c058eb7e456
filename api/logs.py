"""Logging guards: no personal value or live secret reaches a log line.

Request lines (werkzeug's, and gunicorn's access log) lose their query strings
(``?email=`` is personal data) and the token of a double opt-in link, which sits in the
path (``/v1/consents/confirm/<token>``); a rate-limit breach is logged without its key
(a client IP).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping

QUERY = re.compile(r"\?[^\s\"]*")
PATH_TOKEN = re.compile(r"(/v1/consents/confirm/)[^\s\"?/]+")


def _redact(text: str) -> str:
    return PATH_TOKEN.sub(r"\1…", QUERY.sub("?…", text))


class RedactQueryStrings(logging.Filter):
    """Replace the query string and any path token of a logged request line with ``…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):  # werkzeug: "%s - - [%s] %s %s %s"
            record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, Mapping):  # gunicorn's access log: its atoms by name (U: the path)
            record.args = {k: _redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str) and "HTTP/" in record.msg:
            record.msg = _redact(record.msg)
        return True


class RedactRateLimitKeys(logging.Filter):
    """Flask-Limiter logs ``ratelimit <limit> (<key>) exceeded``; the key is a client IP."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("ratelimit %s (%s) exceeded") and isinstance(record.args, tuple):
            record.args = (record.args[0], "…", *record.args[2:])
        return True


def install_log_guards() -> None:
    for name, guard in (("werkzeug", RedactQueryStrings), ("gunicorn.access", RedactQueryStrings),
                        ("flask-limiter", RedactRateLimitKeys)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, guard) for f in logger.filters):
            logger.addFilter(guard())
