"""Append-only, hash-chained logs: the consent ledger and the audit log.

Each entry's hash is SHA-256 over the previous entry's hash and the canonical JSON of
the entry's own fields, so changing, removing or reordering any entry breaks every hash
after it. The chain head (last sequence number and hash) sits in ``chain_heads`` and is
locked for the append, which serialises writers on PostgreSQL (SELECT ... FOR UPDATE)
as SQLite's write lock does. Appends are Core bulk INSERTs: this is the hot path of every
sign-up.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from privacy.storage.models import AuditEntry, ChainHead, ConsentEvent
from privacy.storage.statements import RawTransaction

GENESIS = "0" * 64
CONSENT_CHAIN = "consent"
AUDIT_CHAIN = "audit"


_SCALARS = (str, int, type(None))  # bool is an int


def _scalars_only(data: dict[str, Any]) -> bool:
    """Whether every key is a string and every value a string, integer, boolean or null, or
    an object of those (a consent event always is; a float or a list sends ``canonical``
    the slow way)."""
    for key, value in data.items():
        if type(key) is not str:
            return False
        if isinstance(value, dict):
            if not all(type(k) is str and isinstance(v, _SCALARS) for k, v in value.items()):
                return False
        elif not isinstance(value, _SCALARS):
            return False
    return True


def canonical(data: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers: JSON with sorted keys, no spaces, UTF-8 unescaped.

    The standard library's encoder defines them. orjson writes the very same bytes for
    strings, integers, booleans and null (tested), in a tenth of the time; floats are
    written differently (``1e+16`` against ``1e16``), so anything beyond those types, and
    anything orjson refuses (integers above 64 bits, lone surrogates), goes to ``json``.
    """
    if type(data) is dict and _scalars_only(data):
        try:
            return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@functools.lru_cache(maxsize=256)  # the events of one recording share one time
def timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(body)).hexdigest()


# A recording's events share one source, and most sources are a handful of forms and
# channels: parsed once. The parsed objects are only ever read (hashed), never changed.
_parsed_source = functools.lru_cache(maxsize=256)(json.loads)


def _event_body(e: Any) -> dict[str, Any]:
    return {
        "seq": e["seq"], "subject_id": e["subject_id"], "purpose": e["purpose"], "action": e["action"],
        "status": e["status"], "notice_version": e["notice_version"], "text_hash": e["text_hash"],
        "source": _parsed_source(e["source"]), "recorded_at": timestamp(e["recorded_at"]),
    }


def _audit_body(a: Any) -> dict[str, Any]:
    return {"seq": a["seq"], "actor": a["actor"], "action": a["action"], "target": a["target"],
            "details": json.loads(a["details"]), "at": timestamp(a["at"])}


_HEADS = ChainHead.__table__
LOCK_HEAD = select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.name == bindparam("chain")).with_for_update()
NEW_HEAD = insert(_HEADS)
MOVE_HEAD = update(_HEADS).where(_HEADS.c.name == bindparam("chain")).values(
    seq=bindparam("new_seq"), hash=bindparam("new_hash"))
INSERTS = {CONSENT_CHAIN: insert(ConsentEvent.__table__), AUDIT_CHAIN: insert(AuditEntry.__table__)}


def _chain(seq: int, prev: str, body: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number and hash ``entries`` after the entry (``seq``, ``prev``)."""
    rows = []
    for fields in entries:
        seq += 1
        row = {**fields, "seq": seq, "prev_hash": prev}
        row["hash"] = prev = chain_hash(prev, body(row))
        rows.append(row)
    return rows


class _Core:
    """A Core connection seen as the two calls :func:`_append` needs (as a RawTransaction has them)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def first(self, stmt: Any, params: dict[str, Any]) -> Any:
        return self.conn.execute(stmt, params).first()

    def execute(self, stmt: Any, params: Any) -> None:
        self.conn.execute(stmt, params)


def _append(writer: _Core | RawTransaction, name: str, body: Any, entries: list[dict[str, Any]]
            ) -> list[dict[str, Any]]:
    """Lock the chain head for this transaction, append ``entries`` after it and move it."""
    head = writer.first(LOCK_HEAD, {"chain": name})
    if head is None:
        writer.execute(NEW_HEAD, {"name": name, "seq": 0, "hash": GENESIS})
    seq, prev = (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS)
    rows = _chain(seq, prev, body, entries)
    writer.execute(INSERTS[name], rows)
    writer.execute(MOVE_HEAD, {"chain": name, "new_seq": rows[-1]["seq"], "new_hash": rows[-1]["hash"]})
    return rows


def append_consent_events_raw(tx: RawTransaction, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`append_consent_events` inside a :func:`privacy.storage.database.raw_write` transaction."""
    return _append(tx, CONSENT_CHAIN, _event_body, events) if events else []


def append_consent_events(session: Session, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append consent events (ConsentEvent columns but seq and hashes); returns the rows."""
    if not events:
        return []
    return _append(_Core(session.connection()), CONSENT_CHAIN, _event_body, events)


def append_audit(session: Session, actor: str, action: str, now: dt.datetime,
                 target: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record an admin or officer action. ``details`` must hold no personal values."""
    entry = {"actor": actor, "action": action, "target": target,
             "details": json.dumps(details or {}, sort_keys=True), "at": now}
    return _append(_Core(session.connection()), AUDIT_CHAIN, _audit_body, [entry])[0]


@dataclass(frozen=True)
class ChainReport:
    chain: str
    ok: bool
    entries: int
    broken_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chain": self.chain, "ok": self.ok, "entries": self.entries}
        if not self.ok:
            out["first_broken"] = {"seq": self.broken_seq, "reason": self.reason}
        return out


def _walk(session: Session, model: Any, body: Any, batch: int = 5000) -> Iterator[tuple[Any, dict[str, Any]]]:
    last = 0
    table = model.__table__
    while True:
        rows = [r._mapping for r in session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch))]
        if not rows:
            return
        for row in rows:
            yield row, body(row)
        last = rows[-1]["seq"]


def verify_chain(session: Session, name: str) -> ChainReport:
    """Walk a chain from the start; report the first entry whose link or hash is wrong."""
    model, body = (ConsentEvent, _event_body) if name == CONSENT_CHAIN else (AuditEntry, _audit_body)
    prev, expected_seq, count = GENESIS, 1, 0
    for row, data in _walk(session, model, body):
        if row["seq"] != expected_seq:
            return ChainReport(name, False, count, expected_seq, "entry missing")
        if row["prev_hash"] != prev:
            return ChainReport(name, False, count, row["seq"], "does not link to the entry before it")
        if chain_hash(prev, data) != row["hash"]:
            return ChainReport(name, False, count, row["seq"], "content does not match its hash")
        prev, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    head = session.get(ChainHead, name)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != count or head_hash != prev:
        return ChainReport(name, False, count, count + 1 if head_seq > count else head_seq,
                           "entries after this point were removed" if head_seq > count else "chain head mismatch")
    return ChainReport(name, True, count)


def verify_all(session: Session) -> list[ChainReport]:
    return [verify_chain(session, CONSENT_CHAIN), verify_chain(session, AUDIT_CHAIN)]


def verification(session: Session) -> dict[str, Any]:
    """Both chains checked: ``ok``, each chain's report, and the first broken entry if any."""
    reports = verify_all(session)
    body: dict[str, Any] = {"ok": all(r.ok for r in reports), "chains": [r.as_dict() for r in reports]}
    broken = next((r for r in reports if not r.ok), None)
    if broken is not None:
        body["first_broken"] = {"chain": broken.chain, "seq": broken.broken_seq, "reason": broken.reason}
    return body


def audit_entries(session: Session, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Audit entries after sequence number ``after``, oldest first."""
    table = AuditEntry.__table__
    rows = session.execute(select(table).where(table.c.seq > after).order_by(table.c.seq).limit(limit))
    return [{**_audit_body(a._mapping), "hash": a.hash} for a in rows]
