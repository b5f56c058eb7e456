"""What services need from their surroundings, built once per application."""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from flask import current_app

from privacy.crypto.keys import Crypto
from privacy.mail.mailer import Mailer
from privacy.policy.file import Policy


@dataclass
class PrivacyContext:
    crypto: Crypto
    policy: Policy
    mailer: Mailer
    public_url: str
    double_opt_in_days: int = 14


def current() -> PrivacyContext:
    """The context of the application in the current app context."""
    ctx: PrivacyContext = current_app.extensions["privacy"]
    return ctx


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.lru_cache(maxsize=256)
def as_json_time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
