"""Append-only, hash-chained logs: the consent ledger and the audit log.

Each entry's hash is SHA-256 over the previous entry's hash and the canonical JSON of
the entry's own fields (its seq included), so changing, removing or reordering any entry
breaks every hash after it. A chain's head (last sequence number and hash) sits in
``chain_heads`` and is locked for the append (SELECT ... FOR UPDATE on PostgreSQL, the
write lock on SQLite). This module numbers and hashes; the statements are
:class:`privacy.storage.repositories.ledger.LedgerRepository`'s.

**The consent ledger is 64 chains (shards).** Appending is on the hot path of every
sign-up; with one head every sign-up of the deployment waited on PostgreSQL for the one
before it to commit. A subject's events go to shard
:func:`~privacy.storage.repositories.ledger.shard_of` (SHA-256 of its id, mod 64), whose
head ``consent/NN`` alone is locked, so sign-ups of different subjects mostly do not
wait for each other. Sequence numbers stay unique with no shared counter: the entries
chained before migration 0011 form the frozen legacy chain ``consent`` (seq 1 to
``base``, its head's seq); shard k's i-th entry (i = 0, 1, ...) has seq
``base + k + 1 + 64 * i`` and links to the shard's previous entry (its first to the
all-zero genesis). An empty shard's head is (``base + k + 1 - 64``, genesis), so the
next seq is always the head's + 64. One append may hold events of several subjects
(the expiry job's batches): their shards are locked in ascending order (no deadlock).

**Anchors.** The ``ledger_anchor`` job writes an audit entry ``ledger.anchored`` naming
every consent head (seq and hash) when any moved since the last anchor
(:func:`anchor_heads`), read without a lock.

**Verification** walks ``consent_events`` once in seq order: an entry up to ``base``
checks against the legacy chain, a later one against its shard ((seq - base - 1) mod 64):
the shard's expected next seq (else "entry missing"), its link and its hash; then every
chain's last entry must be its head ("entries after this point were removed") and every
entry the newest anchor names must still be there with that hash, which catches newest
entries cut off together with their head rows. It reads one snapshot.
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

from privacy.storage.database import Database, read_snapshot
from privacy.storage.repositories.ledger import (
    ANCHOR_ACTION,
    AUDIT_CHAIN,
    CONSENT_CHAIN,
    GENESIS,
    SHARDS,
    LedgerRepository,
    shard_head,
    shard_of,
)
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


def _chain(seq: int, prev: str, body: Any, entries: list[dict[str, Any]], step: int = 1) -> list[dict[str, Any]]:
    """Number (``step`` apart) and hash ``entries`` after the entry (``seq``, ``prev``)."""
    rows = []
    for fields in entries:
        seq += step
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
    transaction or a unit of work's session; returns the rows as stored, in the order of
    ``events``. Each event goes to its subject's shard; the shards' heads are locked in
    ascending order (a sign-up's events are one subject's: one head)."""
    if not events:
        return []
    store = LedgerRepository(tx)
    by_shard: dict[int, list[int]] = {}
    for i, event in enumerate(events):
        by_shard.setdefault(shard_of(event["subject_id"]), []).append(i)
    rows: list[dict[str, Any]] = [{}] * len(events)
    last: dict[str, dict[str, Any]] = {}
    for shard in sorted(by_shard):
        seq, prev = store.lock_shard(shard)
        chained = _chain(seq, prev, _event_body, [events[i] for i in by_shard[shard]], SHARDS)
        for i, row in zip(by_shard[shard], chained, strict=True):
            rows[i] = row
        last[shard_head(shard)] = chained[-1]
    store.insert(CONSENT_CHAIN, rows)
    store.move_heads(last)
    return rows


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


def _verify_audit(store: LedgerRepository) -> ChainReport:
    """Walk the audit log from the start; report the first entry whose link or hash is wrong."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row, data in _walk(store, AUDIT_CHAIN, _audit_body):
        if row["seq"] != expected_seq:
            return ChainReport(AUDIT_CHAIN, False, count, expected_seq, "entry missing")
        if row["prev_hash"] != prev:
            return ChainReport(AUDIT_CHAIN, False, count, row["seq"], "does not link to the entry before it")
        if chain_hash(prev, data) != row["hash"]:
            return ChainReport(AUDIT_CHAIN, False, count, row["seq"], "content does not match its hash")
        prev, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    head_seq, head_hash = store.head(AUDIT_CHAIN)
    if head_seq != count or head_hash != prev:
        return ChainReport(AUDIT_CHAIN, False, count, count + 1 if head_seq > count else head_seq,
                           "entries after this point were removed" if head_seq > count else "chain head mismatch")
    return ChainReport(AUDIT_CHAIN, True, count)


Broken = tuple[int, str]  # (first broken seq, reason)


class _ConsentWalk:
    """Where the one pass over the consent ledger stands: the legacy chain's and each
    shard's expected next seq and last hash, and the anchored entries not seen yet."""

    def __init__(self, base: int, anchored: dict[int, str]) -> None:
        self.base = base
        # Slot SHARDS is the legacy chain; slot k < SHARDS is shard k.
        self.next = [base + k + 1 for k in range(SHARDS)] + [1]
        self.prev = [GENESIS] * (SHARDS + 1)
        self.count = 0
        self.anchored = anchored

    def check(self, row: dict[str, Any], data: dict[str, Any]) -> Broken | None:
        """Check one entry (the next in seq order) and move past it; the break, if any."""
        seq = row["seq"]
        if seq <= self.base:
            slot = SHARDS
        elif self.next[SHARDS] <= self.base:  # the legacy chain ended early
            return self.next[SHARDS], "entry missing"
        else:
            slot = (seq - self.base - 1) % SHARDS
        if seq != self.next[slot]:
            return self.next[slot], "entry missing"
        if row["prev_hash"] != self.prev[slot]:
            return seq, "does not link to the entry before it"
        if chain_hash(self.prev[slot], data) != row["hash"]:
            return seq, "content does not match its hash"
        self.next[slot] += 1 if slot == SHARDS else SHARDS
        self.prev[slot] = row["hash"]
        self.count += 1
        if self.anchored.get(seq) == row["hash"]:
            del self.anchored[seq]
        return None

    def heads_broken(self, heads: dict[str, tuple[int, str]]) -> Broken | None:
        """The first chain (by seq) whose last entry is not its head, if any."""
        found: list[Broken] = []
        for slot in range(SHARDS + 1):
            legacy = slot == SHARDS
            step = 1 if legacy else SHARDS
            last = self.next[slot] - step
            empty = (self.base + slot + 1 - SHARDS, GENESIS)
            head_seq, head_hash = heads.get(CONSENT_CHAIN if legacy else shard_head(slot), (0, GENESIS) if legacy
                                            else empty)
            if head_seq > last:
                found.append((last + step, "entries after this point were removed"))
            elif head_seq < last:
                found.append((head_seq + step, "chain head mismatch"))
            elif head_hash != self.prev[slot]:
                found.append((head_seq, "chain head mismatch"))
        return min(found) if found else None


def _anchored(anchor: dict[str, Any] | None) -> dict[int, str]:
    """The entries (seq: hash) an anchor names; an empty chain's genesis names none."""
    if anchor is None:
        return {}
    named = json.loads(anchor["details"]).get(CONSENT_CHAIN, {})
    return {int(seq): str(hash_) for seq, hash_ in named.values() if hash_ != GENESIS}


def _verify_consent(store: LedgerRepository) -> ChainReport:
    heads = store.consent_heads()
    anchor = store.newest_anchor()
    walk = _ConsentWalk(heads.get(CONSENT_CHAIN, (0, GENESIS))[0], _anchored(anchor))
    for row, data in _walk(store, CONSENT_CHAIN, _event_body):
        broken = walk.check(row, data)
        if broken is not None:
            return ChainReport(CONSENT_CHAIN, False, walk.count, *broken)
    broken = walk.heads_broken(heads)
    if broken is None and walk.anchored and anchor is not None:
        at = anchor["at"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        broken = min(walk.anchored), f"entries named by the anchor of {at} are missing"
    if broken is not None:
        return ChainReport(CONSENT_CHAIN, False, walk.count, *broken)
    return ChainReport(CONSENT_CHAIN, True, walk.count)


def verify_chain(session: AnyTransaction, name: str) -> ChainReport:
    """Walk a chain (the consent ledger with its shards, or the audit log) from the start;
    report the first entry whose link or hash is wrong, or what its heads or the newest
    anchor miss. Reads in the caller's transaction (see :func:`verification`)."""
    store = LedgerRepository(session)
    return _verify_consent(store) if name == CONSENT_CHAIN else _verify_audit(store)


def verify_all(session: AnyTransaction) -> list[ChainReport]:
    return [verify_chain(session, CONSENT_CHAIN), verify_chain(session, AUDIT_CHAIN)]


def verification(session: AnyTransaction) -> dict[str, Any]:
    """Both chains checked in one snapshot of the database (appends that commit meanwhile,
    in any shard and order, are not half seen): ``ok``, each chain's report, and the first
    broken entry if any."""
    with read_snapshot(session) as snapshot:
        reports = verify_all(snapshot)
    body: dict[str, Any] = {"ok": all(r.ok for r in reports), "chains": [r.as_dict() for r in reports]}
    broken = next((r for r in reports if not r.ok), None)
    if broken is not None:
        body["first_broken"] = {"chain": broken.chain, "seq": broken.broken_seq, "reason": broken.reason}
    return body


def anchor_heads(database: Database, now: dt.datetime, actor: str = "scheduler") -> dict[str, Any] | None:
    """Append a ``ledger.anchored`` audit entry naming every consent head ({"consent":
    {"legacy": [seq, hash], "00": [seq, hash], ...}}) when one moved since the newest
    anchor; returns it, or None when nothing moved. The heads are read in one plain
    SELECT (no lock: a sign-up never waits for it); the audit log's head is the only lock."""
    with database.raw_read() as reader:
        store = LedgerRepository(reader)
        heads = store.consent_heads()
        newest = store.newest_anchor()
    named = {("legacy" if name == CONSENT_CHAIN else name.rsplit("/", 1)[1]): [seq, hash_]
             for name, (seq, hash_) in sorted(heads.items())}
    details = {CONSENT_CHAIN: named}
    if not heads or (newest is not None and json.loads(newest["details"]) == details):
        return None
    with database.unit_of_work() as session:
        return append_audit(session, actor, ANCHOR_ACTION, now, target=CONSENT_CHAIN, details=details)


def audit_entries(session: AnyTransaction, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Audit entries after sequence number ``after``, oldest first."""
    entries = LedgerRepository(session).entries_after(AUDIT_CHAIN, after, limit)
    return [{**_audit_body(a), "hash": a["hash"]} for a in entries]
