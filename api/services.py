"""Service factories for views and commands: views ask for a service, never build one."""
from __future__ import annotations

import datetime as dt

from privacy.consent import ConsentService
from privacy.context import current, utcnow
from privacy.db import db


def consent_service() -> ConsentService:
    return ConsentService(db.session(), current())


def now() -> dt.datetime:
    return utcnow()
