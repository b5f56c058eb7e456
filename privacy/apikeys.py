"""API keys: random 256-bit tokens shown once, kept only as a SHA-256 hash, with scopes."""
from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
import weakref
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from privacy.crypto.keys import token_hash
from privacy.errors import InvalidInput, NotFound
from privacy.ledger import append_audit
from privacy.storage.database import Database
from privacy.storage.models import ApiKey

SCOPES = ("consent:write", "consent:read", "requests:manage", "admin")
TOKEN_PREFIX = "pk_"
KEY_QUERY = select(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.revoked_at).where(
    ApiKey.token_hash == bindparam("digest"))


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
        forget_keys()
        append_audit(session, actor, "key.revoke", now, target=key.id, details={"name": key.name})
    return key


# token hash -> (principal or None, when looked up). A revoked key stops working in this
# process at once and in the others within KEY_CACHE_TTL_S: one indexed SELECT less on
# every request of marketing automation's hot path.
KEY_CACHE_TTL_S = 5.0
_KEY_CACHE_MAX = 4096
_key_cache: weakref.WeakKeyDictionary[Engine, dict[str, tuple[Principal | None, float]]] = weakref.WeakKeyDictionary()


def forget_keys() -> None:
    _key_cache.clear()


def authenticate(database: Database, token: str) -> Principal | None:
    """The principal of a bearer token, or None when unknown or revoked (a cache hit opens no
    session)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = token_hash(token)
    cache = _key_cache.get(engine := database.engine)
    if cache is None:
        cache = _key_cache[engine] = {}
    clock = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and clock - hit[1] < KEY_CACHE_TTL_S:
        return hit[0]
    row = database.session.execute(KEY_QUERY, {"digest": digest}).first()
    principal = None
    if row is not None and row.revoked_at is None:
        principal = Principal(row.id, row.name, frozenset(row.scopes.split(",")))
    if len(cache) >= _KEY_CACHE_MAX:
        cache.clear()
    cache[digest] = (principal, clock)
    return principal
