"""The single-use links mailed to a customer: the verification link and the download link.

Only a hash of a token is stored; the token itself travels in the mail. A token works
for its own request and purpose only, a limited number of times, until it expires.
"""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import insert
from sqlalchemy.orm import Session

from privacy.crypto.keys import token_hash
from privacy.errors import Conflict, Gone, NotFound
from privacy.storage.models import DataRequest, RequestToken

VERIFY_DAYS = 7  # the verification link works once, for 7 days; an unverified request then expires
DOWNLOAD_DAYS = 7  # the download link (and the package it opens) lasts 7 days
DOWNLOAD_USES = 3  # ... and works 3 times


def issue(session: Session, request_id: str, purpose: str, expires_at: dt.datetime, uses: int) -> str:
    """A new token for ``purpose`` (``verify`` or ``download``) on the request; returned once."""
    token = secrets.token_urlsafe(32)
    session.execute(insert(RequestToken), [{
        "token_hash": token_hash(token), "request_id": request_id, "purpose": purpose,
        "expires_at": expires_at, "uses_left": uses, "used_at": None}])
    return token


def use(session: Session, request: DataRequest, token: str, purpose: str, now: dt.datetime) -> RequestToken:
    """Spend one use of ``token``: 404 if it is not this request's token for ``purpose``,
    409 once used up, 410 once expired."""
    row = session.get(RequestToken, token_hash(token), with_for_update=True) if token else None
    if row is None or row.request_id != request.id or row.purpose != purpose:
        raise NotFound("unknown or wrong link for this request", {"token": ["unknown"]}, code="invalid_token")
    if row.uses_left <= 0:
        raise Conflict("this link was already used", {"token": ["already used"]}, code="token_used")
    if row.expires_at <= now:
        raise Gone("this link has expired", {"token": ["expired"]}, code="token_expired")
    row.uses_left -= 1
    row.used_at = now
    return row
