"""Purposes and their notice versions: the policy file, overridden through the admin API.

What the admin API sets is stored with ``origin = 'api'`` and the digest of the file's
entry at that moment; it wins over the file until the file's own entry changes.
A changed notice text always makes a new notice version, kept with its text hash, so a
consent can always be traced to the exact words it was given to.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from privacy.errors import InvalidInput
from privacy.ledger import append_audit
from privacy.policy.file import Policy, PurposeDef, flatten_errors, validate_purpose_body
from privacy.policy.schema import CODE_PATTERN
from privacy.storage.database import AnySession, Database
from privacy.storage.models import NoticeVersion, Purpose
from privacy.storage.statements import RawTransaction

log = logging.getLogger(__name__)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Catalogue:
    """The purposes in force, with every known notice version of each."""

    purposes: dict[str, PurposeDef]
    notices: dict[str, dict[str, str]]  # purpose -> version -> text hash
    stamp: tuple[tuple[Any, ...], ...] = ()  # (code, updated_at) of every purpose, as the database returns them

    def notice_hash(self, purpose: str, version: str) -> str | None:
        return self.notices.get(purpose, {}).get(version)


STAMP_SQL = "SELECT code, updated_at FROM purposes ORDER BY code"
"""What says whether the catalogue changed: every write to a purpose moves its
``updated_at``. Read raw (no type conversion), it costs a few microseconds, so every
request that needs the catalogue can afford to ask."""

_cache: weakref.WeakKeyDictionary[Engine, Catalogue] = weakref.WeakKeyDictionary()  # per database


def ask_stamp(reader: RawTransaction) -> Callable[[], tuple[tuple[Any, ...], ...]]:
    """The catalogue's stamp, asked inside a caller's read transaction: the returned
    function reads the answer (sent with the next read, see :meth:`RawTransaction.later`)."""
    rows = reader.later(STAMP_SQL)
    return lambda: tuple(tuple(row) for row in rows())


def load_catalogue(database: Database) -> Catalogue:
    """The purposes in force now: one stamp query, and a re-read only when a purpose changed.

    The parsed catalogue is shared by the requests of a process; a change made by any
    process is seen by the next request that asks.
    """
    stamp = tuple(tuple(row) for row in database.session.connection().exec_driver_sql(STAMP_SQL))
    return catalogue_as_of(database, stamp)


def cached_catalogue(database: Database) -> Catalogue:
    """The catalogue this process read last, without asking the database; the caller checks
    its stamp later (the sign-up does, inside its own read transaction, with
    :func:`ask_stamp`)."""
    cached = _cache.get(database.engine)
    return cached if cached is not None else load_catalogue(database)


def catalogue_as_of(database: Database, stamp: tuple[tuple[Any, ...], ...]) -> Catalogue:
    """The catalogue whose stamp is ``stamp``: the cached one, or read afresh."""
    cached = _cache.get(database.engine)
    if cached is not None and cached.stamp == stamp:
        return cached
    catalogue = _read_catalogue(database.session, stamp)
    _cache[database.engine] = catalogue
    return catalogue


def _read_catalogue(session: AnySession, stamp: tuple[tuple[Any, ...], ...]) -> Catalogue:
    purposes = {row.code: PurposeDef.from_data(json.loads(row.definition)) for row in session.scalars(select(Purpose))}
    notices: dict[str, dict[str, str]] = {}
    for code, version, digest in session.execute(
        select(NoticeVersion.purpose_code, NoticeVersion.version, NoticeVersion.text_hash)
    ):
        notices.setdefault(code, {})[version] = digest
    return Catalogue(purposes, notices, stamp)


def _record_notice(session: Session, purpose: PurposeDef, now: dt.datetime) -> PurposeDef:
    """Store the purpose's notice text as a version; relabel it if its label is taken."""
    if not purpose.notice:
        return purpose
    version, text = purpose.notice["version"], purpose.notice["text"]
    digest = text_hash(text)
    existing = {
        nv.version: nv.text_hash
        for nv in session.scalars(select(NoticeVersion).where(NoticeVersion.purpose_code == purpose.code))
    }
    if existing.get(version) == digest:
        return purpose
    for known, known_hash in existing.items():
        if known_hash == digest and known.startswith(version):
            return _with_notice(purpose, known, text)
    label, n = version, 1
    while label in existing:
        n += 1
        label = f"{version}.{n}"
    session.add(NoticeVersion(purpose_code=purpose.code, version=label, text=text, text_hash=digest, created_at=now))
    return _with_notice(purpose, label, text)


def _with_notice(purpose: PurposeDef, version: str, text: str) -> PurposeDef:
    return PurposeDef.from_data({**purpose.to_data(), "notice": {"version": version, "text": text}})


def _store(session: Session, purpose: PurposeDef, origin: str, file_digest: str | None, now: dt.datetime) -> PurposeDef:
    row = session.get(Purpose, purpose.code)
    if row is None:
        row = Purpose(code=purpose.code, definition="{}", origin=origin, updated_at=now)
        session.add(row)
        session.flush()
    purpose = _record_notice(session, purpose, now)
    row.definition = json.dumps(purpose.to_data(), sort_keys=True)
    row.origin = origin
    row.file_digest = file_digest
    row.updated_at = now  # moves the catalogue's stamp: every process re-reads on its next request
    return purpose


def sync_from_policy(session: Session, policy: Policy, now: dt.datetime) -> None:
    """Bring the stored purposes in line with the policy file (idempotent)."""
    try:
        for purpose in policy.purposes:
            digest = purpose.digest()
            row = session.get(Purpose, purpose.code)
            if row is not None and row.file_digest == digest:
                continue  # unchanged in the file: the stored one (file or API) stands
            _store(session, purpose, "file", digest, now)
        session.commit()
    except IntegrityError:
        # Another process synced at the same moment; what it stored is the same file.
        session.rollback()
        log.info("policy sync raced with another process; keeping its result")


def put_purpose(database: Database, policy: Policy, code: str, body: Any, actor: str, now: dt.datetime
                ) -> PurposeDef:
    """Create or replace a purpose from the admin API, in its own audited transaction."""
    if not isinstance(body, dict):
        raise InvalidInput.field("_body", "must be a JSON object")
    if not re.fullmatch(CODE_PATTERN, code):
        raise InvalidInput.field("code", "must be lower_snake_case, 1-64 characters")
    try:
        purpose = validate_purpose_body(code, body, policy)
    except ValidationError as exc:
        raise InvalidInput.fields(flatten_errors(exc.messages)) from exc
    with database.unit_of_work() as session:
        row = session.get(Purpose, code)
        file_entry = next((p for p in policy.purposes if p.code == code), None)
        file_digest = file_entry.digest() if file_entry else (row.file_digest if row else None)
        created = row is None
        stored = _store(session, purpose, "api", file_digest, now)
        append_audit(session, actor, "purpose.put", now, target=code,
                     details={"created": created, "notice_version": (stored.notice or {}).get("version")})
    return stored


def describe(purpose: PurposeDef, catalogue: Catalogue) -> dict[str, Any]:
    """A purpose as the API shows it, with its current notice version and hash."""
    data = purpose.to_data()
    if purpose.notice:
        version = purpose.notice["version"]
        data["notice"] = {"version": version, "text": purpose.notice["text"],
                          "text_hash": catalogue.notice_hash(purpose.code, version)}
    data["notice_versions"] = sorted(catalogue.notices.get(purpose.code, {}))
    return data


def list_purposes(database: Database) -> list[dict[str, Any]]:
    """Every stored purpose as the API shows it, ordered by code."""
    catalogue = load_catalogue(database)
    origins = {code: origin for code, origin in database.session.execute(select(Purpose.code, Purpose.origin))}
    return [{**describe(p, catalogue), "origin": origins.get(code)} for code, p in sorted(catalogue.purposes.items())]
