"""The single-use links mailed to a customer: the verification link and the download link.

Only a hash of a token is stored; the token itself travels in the mail. A token works
for its own request and purpose only, a limited number of times, until it expires.
"""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy.orm import Session

from privacy.crypto.keys import token_hash
from privacy.errors import Conflict, Gone, NotFound
from privacy.storage.repositories.requests import RequestRecord, RequestRepository, TokenRecord

VERIFY_DAYS = 7  # the verification link works once, for 7 days; an unverified request then expires
DOWNLOAD_DAYS = 7  # the download link (and the package it opens) lasts 7 days
DOWNLOAD_USES = 3  # ... and works 3 times


def issue(session: Session, request_id: str, purpose: str, expires_at: dt.datetime, uses: int) -> str:
    """A new token for ``purpose`` (``verify`` or ``download``) on the request; returned once."""
    token = secrets.token_urlsafe(32)
    RequestRepository(session).add_token(TokenRecord(token_hash(token), request_id, purpose, expires_at, uses, None))
    return token


def use(session: Session, request: RequestRecord, token: str, purpose: str, now: dt.datetime) -> TokenRecord:
    """Spend one use of ``token``: 404 if it is not this request's token for ``purpose``,
    409 once used up, 410 once expired."""
    tokens = RequestRepository(session)
    row = tokens.token(token_hash(token)) if token else None
    if row is None or row.request_id != request.id or row.purpose != purpose:
        raise NotFound("unknown or wrong link for this request", {"token": ["unknown"]}, code="invalid_token")
    if row.uses_left <= 0:
        raise Conflict("this link was already used", {"token": ["already used"]}, code="token_used")
    if row.expires_at <= now:
        raise Gone("this link has expired", {"token": ["expired"]}, code="token_expired")
    tokens.spend(row, now)
    return row
