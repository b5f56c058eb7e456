"""API keys: random 256-bit tokens shown once, kept only as a SHA-256 hash, with scopes."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.errors import InvalidInput, NotFound
from privacy.ledger import append_audit
from privacy.models import ApiKey

SCOPES = ("consent:write", "consent:read", "requests:manage", "admin")
TOKEN_PREFIX = "pk_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's id, name and scopes."""

    key_id: str
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"key:{self.name}"

    def may(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise InvalidInput.field("scopes", f"unknown scope(s) {', '.join(unknown) or '(none given)'}; "
                                 f"choose from {', '.join(SCOPES)}")
    return scopes


def create_key(session: Session, name: str, scopes: list[str], actor: str, now: dt.datetime) -> tuple[ApiKey, str]:
    """Create a key; the token is returned once and never stored."""
    if not name or len(name) > 100:
        raise InvalidInput.field("name", "must be 1-100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=str(uuid.uuid4()), name=name, prefix=token[:10], token_hash=token_hash(token),
                 scopes=",".join(scopes), created_at=now)
    session.add(key)
    append_audit(session, actor, "key.create", now, target=key.id, details={"name": name, "scopes": scopes})
    return key, token


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, ident: str, actor: str, now: dt.datetime) -> ApiKey:
    key = session.get(ApiKey, ident) or session.scalars(
        select(ApiKey).where(ApiKey.name == ident, ApiKey.revoked_at.is_(None))).first()
    if key is None:
        raise NotFound(f"no API key '{ident}'")
    if key.revoked_at is None:
        key.revoked_at = now
        append_audit(session, actor, "key.revoke", now, target=key.id, details={"name": key.name})
    return key


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal of a bearer token, or None when unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    key = session.scalars(select(ApiKey).where(ApiKey.token_hash == token_hash(token))).one_or_none()
    if key is None or key.revoked_at is not None:
        return None
    return Principal(key.id, key.name, frozenset(key.scopes.split(",")))
