"""The ledger's tables: ``consent_events`` and ``audit_log`` (append-only, hash-chained) and
``chain_heads`` (each chain's last sequence number and hash).

The consent ledger has 65 heads: ``consent``, the single chain written before migration
0011 (frozen since; its seq is the ``base`` the shards number from), and one per shard,
``consent/00`` to ``consent/63`` (:func:`shard_of` says which a subject's events go to).

Only the statements are here; numbering and hashing entries is :mod:`privacy.ledger`'s.
No statement here updates or deletes an entry: the migrations' triggers refuse both.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from privacy.storage.models import AuditEntry, ChainHead, ConsentEvent
from privacy.storage.statements import AnyTransaction, as_transaction

CONSENT_CHAIN = "consent"
AUDIT_CHAIN = "audit"
GENESIS = "0" * 64
STREAM_BATCH = 500
SHARDS = 64
ANCHOR_ACTION = "ledger.anchored"

_HEADS = ChainHead.__table__
_EVENTS = ConsentEvent.__table__
_AUDIT = AuditEntry.__table__
TABLES = {CONSENT_CHAIN: _EVENTS, AUDIT_CHAIN: _AUDIT}

# Locked for the append: serialises writers on PostgreSQL as SQLite's write lock does.
LOCK_HEAD = select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.name == bindparam("chain")).with_for_update()
HEAD = select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.name == bindparam("chain"))
NEW_HEAD = insert(_HEADS)
# A shard's head made by whichever of two first appends comes first (the other's is dropped).
NEW_HEAD_ONCE = {"postgresql": pg_insert(_HEADS).on_conflict_do_nothing(index_elements=["name"]),
                 "sqlite": sqlite_insert(_HEADS).on_conflict_do_nothing(index_elements=["name"])}
MOVE_HEAD = update(_HEADS).where(_HEADS.c.name == bindparam("chain")).values(
    seq=bindparam("new_seq"), hash=bindparam("new_hash"))
INSERTS = {name: insert(table) for name, table in TABLES.items()}
AFTER = {name: select(table).where(table.c.seq > bindparam("after")).order_by(table.c.seq).limit(bindparam("n"))
         for name, table in TABLES.items()}
EVENTS_OF = select(_EVENTS).where(_EVENTS.c.subject_id == bindparam("sid")).order_by(_EVENTS.c.seq)
SOURCES_OF = select(_EVENTS.c.source).where(_EVENTS.c.subject_id == bindparam("sid")).distinct()
AUDIT_OF = select(_AUDIT).where(_AUDIT.c.target == bindparam("target")).order_by(_AUDIT.c.seq)


def shard_head(shard: int) -> str:
    """The name of shard ``shard``'s head row: ``consent/07``."""
    return f"{CONSENT_CHAIN}/{shard:02d}"


def shard_of(subject_id: str) -> int:
    """The shard a subject's consent events are chained in: the first 8 bytes of
    SHA-256(subject id as UTF-8), big-endian, modulo :data:`SHARDS`. Fixed for good: it is
    how verification tells which chain an entry belongs to (through its seq)."""
    return int.from_bytes(hashlib.sha256(subject_id.encode()).digest()[:8], "big") % SHARDS


# The consent ledger's heads in one plain read (no lock: never waits for an append).
CONSENT_HEADS_NOW = select(_HEADS.c.name, _HEADS.c.seq, _HEADS.c.hash).where(
    or_(_HEADS.c.name == CONSENT_CHAIN, _HEADS.c.name.like(CONSENT_CHAIN + "/%")))
NEWEST_ANCHOR = (select(_AUDIT).where(_AUDIT.c.target == CONSENT_CHAIN, _AUDIT.c.action == ANCHOR_ACTION)
                 .order_by(_AUDIT.c.seq.desc()).limit(1))


class LedgerRepository:
    """The statements of the two hash chains and their heads."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    def lock_head(self, chain: str) -> tuple[int, str]:
        """The chain's (last seq, last hash), locked until the transaction ends; a chain
        without a head gets one at (0, genesis)."""
        head = self.tx.first(LOCK_HEAD, {"chain": chain})
        if head is None:
            self.tx.execute(NEW_HEAD, {"name": chain, "seq": 0, "hash": GENESIS})
            return 0, GENESIS
        return int(head.seq), str(head.hash)

    def lock_shard(self, shard: int) -> tuple[int, str]:
        """Shard ``shard``'s head (last seq, last hash), locked until the transaction ends.
        Migration 0011 creates every shard's head; one missing is made as that migration
        does: (base + shard + 1 - SHARDS, genesis), base being the legacy head's seq."""
        name = shard_head(shard)
        head = self.tx.first(LOCK_HEAD, {"chain": name})
        if head is None:
            start = self.head(CONSENT_CHAIN)[0] + shard + 1 - SHARDS
            self.tx.execute(NEW_HEAD_ONCE[self.tx.dialect.name], {"name": name, "seq": start, "hash": GENESIS})
            head = self.tx.first(LOCK_HEAD, {"chain": name})
        return int(head.seq), str(head.hash)

    def append(self, chain: str, rows: list[dict[str, Any]]) -> None:
        """Insert numbered, hashed entries (after :meth:`lock_head`) and move the head to the last."""
        self.insert(chain, rows)
        self.move_heads({chain: rows[-1]})

    def insert(self, chain: str, rows: list[dict[str, Any]]) -> None:
        """Insert numbered, hashed entries into the table of ``chain``."""
        self.tx.execute(INSERTS[chain], rows)

    def move_heads(self, last: dict[str, dict[str, Any]]) -> None:
        """Move each named head (locked by this transaction) to its new last entry."""
        moves = [{"chain": name, "new_seq": row["seq"], "new_hash": row["hash"]} for name, row in last.items()]
        self.tx.execute(MOVE_HEAD, moves[0] if len(moves) == 1 else moves)

    def consent_heads(self) -> dict[str, tuple[int, str]]:
        """Every head of the consent ledger (legacy and shards) by name, in one unlocked read."""
        return {r.name: (int(r.seq), str(r.hash)) for r in self.tx.all(CONSENT_HEADS_NOW)}

    def newest_anchor(self) -> dict[str, Any] | None:
        """The newest ``ledger.anchored`` audit entry (its columns), or None."""
        row = self.tx.first(NEWEST_ANCHOR)
        return None if row is None else row._asdict()

    def head(self, chain: str) -> tuple[int, str]:
        """The chain's (last seq, last hash) as stored, unlocked; (0, genesis) for no head."""
        head = self.tx.first(HEAD, {"chain": chain})
        return (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS)

    def entries_after(self, chain: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` entries of the chain after sequence number ``after``, oldest first
        (each a dict of its columns)."""
        return [r._asdict() for r in self.tx.all(AFTER[chain], {"after": after, "n": limit})]

    def audit_of(self, target: str) -> list[Any]:
        """The audit entries about ``target``, oldest first."""
        return self.tx.all(AUDIT_OF, {"target": target})

    def events_of(self, subject_id: str) -> list[Any]:
        """The subject's consent events, oldest first."""
        return self.tx.all(EVENTS_OF, {"sid": subject_id})

    def stream_events_of(self, subject_id: str) -> Iterator[Any]:
        """The subject's consent events, oldest first, fetched in batches (a long history is
        not held in memory; on PostgreSQL, a server-side cursor)."""
        return self.tx.stream(EVENTS_OF, {"sid": subject_id}, STREAM_BATCH)

    def sources_of(self, subject_id: str) -> list[str]:
        """The distinct ``source`` texts of the subject's consent events."""
        return [r[0] for r in self.tx.all(SOURCES_OF, {"sid": subject_id})]
