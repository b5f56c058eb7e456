"""Append-only, hash-chained logs: the consent ledger and the audit log.

Each entry's hash is SHA-256 over the previous entry's hash and the canonical JSON of
the entry's own fields, so changing, removing or reordering any entry breaks every hash
after it. The chain head (last sequence number and hash) sits in ``chain_heads`` and is
locked for the append, which serialises writers on PostgreSQL (SELECT ... FOR UPDATE)
as SQLite's write lock does. This module numbers and hashes; the statements are
:class:`privacy.storage.repositories.ledger.LedgerRepository`'s. Appending is on the
hot path of every sign-up.
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

from privacy.storage.repositories.ledger import AUDIT_CHAIN, CONSENT_CHAIN, GENESIS, LedgerRepository
from privacy.storage.statements import AnyTransaction

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


def _chain(seq: int, prev: str, body: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number and hash ``entries`` after the entry (``seq``, ``prev``)."""
    rows = []
    for fields in entries:
        seq += 1
        row = {**fields, "seq": seq, "prev_hash": prev}
        row["hash"] = prev = chain_hash(prev, body(row))
        rows.append(row)
    return rows


def _append(tx: AnyTransaction, name: str, body: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lock the chain head for this transaction, append ``entries`` after it and move it."""
    store = LedgerRepository(tx)
    seq, prev = store.lock_head(name)
    rows = _chain(seq, prev, body, entries)
    store.append(name, rows)
    return rows


def append_consent_events(tx: AnyTransaction, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append consent events (ConsentEvent columns but seq and hashes) in ``tx``, a raw
    transaction or a unit of work's session; returns the rows as stored."""
    return _append(tx, CONSENT_CHAIN, _event_body, events) if events else []


def append_audit(session: AnyTransaction, actor: str, action: str, now: dt.datetime,
                 target: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record an admin or officer action. ``details`` must hold no personal values."""
    entry = {"actor": actor, "action": action, "target": target,
             "details": json.dumps(details or {}, sort_keys=True), "at": now}
    return _append(session, AUDIT_CHAIN, _audit_body, [entry])[0]


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


def _walk(store: LedgerRepository, name: str, body: Any, batch: int = 5000
          ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    last = 0
    while True:
        rows = store.entries_after(name, last, batch)
        if not rows:
            return
        for row in rows:
            yield row, body(row)
        last = rows[-1]["seq"]


def verify_chain(session: AnyTransaction, name: str) -> ChainReport:
    """Walk a chain from the start; report the first entry whose link or hash is wrong."""
    store = LedgerRepository(session)
    body = _event_body if name == CONSENT_CHAIN else _audit_body
    prev, expected_seq, count = GENESIS, 1, 0
    for row, data in _walk(store, name, body):
        if row["seq"] != expected_seq:
            return ChainReport(name, False, count, expected_seq, "entry missing")
        if row["prev_hash"] != prev:
            return ChainReport(name, False, count, row["seq"], "does not link to the entry before it")
        if chain_hash(prev, data) != row["hash"]:
            return ChainReport(name, False, count, row["seq"], "content does not match its hash")
        prev, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    head_seq, head_hash = store.head(name)
    if head_seq != count or head_hash != prev:
        return ChainReport(name, False, count, count + 1 if head_seq > count else head_seq,
                           "entries after this point were removed" if head_seq > count else "chain head mismatch")
    return ChainReport(name, True, count)


def verify_all(session: AnyTransaction) -> list[ChainReport]:
    return [verify_chain(session, CONSENT_CHAIN), verify_chain(session, AUDIT_CHAIN)]


def verification(session: AnyTransaction) -> dict[str, Any]:
    """Both chains checked: ``ok``, each chain's report, and the first broken entry if any."""
    reports = verify_all(session)
    body: dict[str, Any] = {"ok": all(r.ok for r in reports), "chains": [r.as_dict() for r in reports]}
    broken = next((r for r in reports if not r.ok), None)
    if broken is not None:
        body["first_broken"] = {"chain": broken.chain, "seq": broken.broken_seq, "reason": broken.reason}
    return body


def audit_entries(session: AnyTransaction, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Audit entries after sequence number ``after``, oldest first."""
    entries = LedgerRepository(session).entries_after(AUDIT_CHAIN, after, limit)
    return [{**_audit_body(a), "hash": a["hash"]} for a in entries]
