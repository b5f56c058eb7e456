"""Service factories for views and commands: views ask for a service, never build one."""
from __future__ import annotations

import datetime as dt

from exports.store import instance_store
from privacy.consent.service import ConsentService
from privacy.context import current, utcnow
from privacy.requests.service import RequestService
from privacy.storage.database import db


def consent_service() -> ConsentService:
    # The scoped session itself, not a session: a sign-up never needs one (see bind_of).
    return ConsentService(db.session, current())


def now() -> dt.datetime:
    return utcnow()


def request_service() -> RequestService:
    return RequestService(db.session(), current(), packager=instance_store())
