"""The ledger's tables: ``consent_events`` and ``audit_log`` (append-only, hash-chained) and
``chain_heads`` (each chain's last sequence number and hash).

Only the statements are here; numbering and hashing entries is :mod:`privacy.ledger`'s.
No statement here updates or deletes an entry: the migrations' triggers refuse both.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from privacy.storage.models import AuditEntry, ChainHead, ConsentEvent
from privacy.storage.statements import AnyTransaction, as_transaction

CONSENT_CHAIN = "consent"
AUDIT_CHAIN = "audit"
GENESIS = "0" * 64
STREAM_BATCH = 500

_HEADS = ChainHead.__table__
_EVENTS = ConsentEvent.__table__
_AUDIT = AuditEntry.__table__
TABLES = {CONSENT_CHAIN: _EVENTS, AUDIT_CHAIN: _AUDIT}

# Locked for the append: serialises writers on PostgreSQL as SQLite's write lock does.
LOCK_HEAD = select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.name == bindparam("chain")).with_for_update()
HEAD = select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.name == bindparam("chain"))
NEW_HEAD = insert(_HEADS)
MOVE_HEAD = update(_HEADS).where(_HEADS.c.name == bindparam("chain")).values(
    seq=bindparam("new_seq"), hash=bindparam("new_hash"))
INSERTS = {name: insert(table) for name, table in TABLES.items()}
AFTER = {name: select(table).where(table.c.seq > bindparam("after")).order_by(table.c.seq).limit(bindparam("n"))
         for name, table in TABLES.items()}
EVENTS_OF = select(_EVENTS).where(_EVENTS.c.subject_id == bindparam("sid")).order_by(_EVENTS.c.seq)
SOURCES_OF = select(_EVENTS.c.source).where(_EVENTS.c.subject_id == bindparam("sid")).distinct()
AUDIT_OF = select(_AUDIT).where(_AUDIT.c.target == bindparam("target")).order_by(_AUDIT.c.seq)


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

    def append(self, chain: str, rows: list[dict[str, Any]]) -> None:
        """Insert numbered, hashed entries (after :meth:`lock_head`) and move the head to the last."""
        self.tx.execute(INSERTS[chain], rows)
        self.tx.execute(MOVE_HEAD, {"chain": chain, "new_seq": rows[-1]["seq"], "new_hash": rows[-1]["hash"]})

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
