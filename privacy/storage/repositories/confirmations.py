"""Used double opt-in links: ``confirmations``, one row per used link under its token's hash
(and, from before links carried their purposes, a row per mailed link)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, update

from privacy.storage.models import Confirmation
from privacy.storage.statements import AnyTransaction, as_transaction, integrity_errors

_C = Confirmation.__table__

GET = select(_C.c.subject_id, _C.c.purposes, _C.c.expires_at, _C.c.used_at).where(
    _C.c.token_hash == bindparam("hash"))
INSERT = insert(_C)
# Only an unused row: of two clicks at once on a stored link, one finds it used.
USE = update(_C).where(_C.c.token_hash == bindparam("b_hash"), _C.c.used_at.is_(None)).values(
    used_at=bindparam("b_now"))
PURGE = delete(_C).where(_C.c.expires_at < bindparam("b_now"))


@dataclass(slots=True)
class ConfirmationRecord:
    """A stored link: whose, which purposes, until when, and when it was used."""

    subject_id: str
    purposes: list[str]
    expires_at: dt.datetime
    used_at: dt.datetime | None


class ConfirmationRepository:
    """The statements of ``confirmations``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    def get(self, token_hash: str) -> ConfirmationRecord | None:
        row = self.tx.first(GET, {"hash": token_hash})
        if row is None:
            return None
        return ConfirmationRecord(row.subject_id, json.loads(row.purposes), row.expires_at, row.used_at)

    def add_used(self, token_hash: str, subject_id: str, purposes: list[str], issued_at: dt.datetime,
                 expires_at: dt.datetime, now: dt.datetime) -> bool:
        """Store a link's use; False when a row for the link is there already (used a moment ago).

        On PostgreSQL the refused insert ends the transaction: the caller must not write more."""
        try:
            self.tx.execute(INSERT, {"token_hash": token_hash, "subject_id": subject_id,
                                     "purposes": json.dumps(purposes), "created_at": issued_at,
                                     "expires_at": expires_at, "used_at": now})
        except integrity_errors(self.tx.dialect):
            return False
        return True

    def use(self, token_hash: str, now: dt.datetime) -> bool:
        """Mark a stored, unused link used; False when it was used already."""
        return bool(self.tx.execute(USE, {"b_hash": token_hash, "b_now": now}).rowcount == 1)

    def purge_expired(self, now: dt.datetime) -> int:
        """Delete the rows of links that expired before ``now``; returns how many."""
        return int(self.tx.execute(PURGE, {"b_now": now}).rowcount or 0)
