"""Logging guards: request lines lose their query strings (``?email=`` is personal data)."""
from __future__ import annotations

import logging
import re

QUERY = re.compile(r"\?[^\s\"]*")


class RedactQueryStrings(logging.Filter):
    """Replace the query string of any logged request line with ``?…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(QUERY.sub("?…", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = QUERY.sub("?…", record.msg) if "HTTP/" in record.msg else record.msg
        return True


def install_log_guards() -> None:
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactQueryStrings) for f in werkzeug.filters):
        werkzeug.addFilter(RedactQueryStrings())
