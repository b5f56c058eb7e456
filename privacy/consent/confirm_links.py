"""Double opt-in links that carry what they confirm, under a MAC.

A confirm link's token names the subject, the purposes it confirms, when it was issued
and until when it is valid, followed by a MAC under the link key (the key of the
withdraw links, with its own first part). Nothing is stored when a sign-up makes one.
Before, every double opt-in sign-up stored the hash of a random token. That row landed
on a random leaf of its table, which made it one of the dearest of the sign-up's writes.

Using a link is what is stored: a row in ``confirmations`` under the token's hash. It
makes a second click answer 410 ``token_used``, and of two clicks at once only one
confirms, because the row's primary key admits one.

Links mailed before this format keep working until they expire. Their token is random,
with no ``.``, and its hash was stored when the sign-up made it.

The token shows the subject's pseudonymous id and the purpose codes to whoever holds
the mail, which is the person the link confirms for. The mail lists the same purposes.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from privacy.crypto.keys import Crypto, b64url

MAC_PART = "confirm"
"""The MAC's first part: a confirm token can never pass for a withdraw token, or back."""


@dataclass(frozen=True)
class ConfirmLink:
    """What a confirm link's token says."""

    subject_id: str
    purposes: list[str]
    issued_at: dt.datetime
    expires_at: dt.datetime


def issue(crypto: Crypto, subject_id: str, purposes: list[str], now: dt.datetime, days: int) -> str:
    """The token of a link confirming ``purposes`` of ``subject_id``, valid for ``days`` days."""
    issued = int(now.timestamp() * 1_000_000)
    expires = int((now + dt.timedelta(days=days)).timestamp())
    payload = f"{subject_id}|{issued}|{expires}|{','.join(purposes)}"
    return f"{b64url(payload.encode())}.{crypto.link_token(MAC_PART, payload)}"


def is_legacy(token: str) -> bool:
    """Whether ``token`` has the form of a link made before this one (its hash is stored)."""
    return "." not in token


def read(crypto: Crypto, token: str) -> ConfirmLink | None:
    """What a token of :func:`issue` says, or None if it is not one (malformed or forged)."""
    encoded, _, mac = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, ValueError):  # not base64, or not UTF-8
        return None
    if not mac.isascii() or not crypto.check_link_token(mac, MAC_PART, payload):
        return None
    subject_id, issued, expires, purposes = payload.split("|")
    return ConfirmLink(subject_id, purposes.split(",") if purposes else [],
                       dt.datetime.fromtimestamp(int(issued) / 1_000_000, dt.UTC),
                       dt.datetime.fromtimestamp(int(expires), dt.UTC))
