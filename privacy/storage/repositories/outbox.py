"""The mail outbox: ``mail_outbox``, mails (or the notes they are written from) waiting to be
sent, each sealed under its owner's key. Every statement on the table is here."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from privacy.storage.models import DataRequest, OutboxMail, Subject
from privacy.storage.statements import AnyTransaction, Prepared, as_transaction, prepare

_O = OutboxMail.__table__
_S = Subject.__table__
_R = DataRequest.__table__

INSERT_MAIL = insert(_O)
# The due mails with their owner's wrapped key, locked (PostgreSQL; other deliverers skip
# them) until the lease is written.
DUE = (select(_O.c.id, _O.c.sealed, _O.c.attempts, _S.c.id.label("subject_id"),
              _S.c.wrapped_key.label("subject_key"), _S.c.master_key_id.label("subject_mk"),
              _R.c.id.label("request_id"), _R.c.wrapped_key.label("request_key"),
              _R.c.master_key_id.label("request_mk"))
       .outerjoin(_S, _S.c.id == _O.c.subject_id).outerjoin(_R, _R.c.id == _O.c.request_id)
       .where(_O.c.next_attempt_at <= bindparam("now")).order_by(_O.c.created_at).limit(bindparam("n"))
       .with_for_update(skip_locked=True, of=_O))
LEASE = update(_O).where(_O.c.id == bindparam("b_id")).values(next_attempt_at=bindparam("b_until"))
RETRY = update(_O).where(_O.c.id == bindparam("b_id")).values(
    attempts=bindparam("b_attempts"), last_error=bindparam("b_error"), next_attempt_at=bindparam("b_next"))
DELETE_MAIL = delete(_O).where(_O.c.id == bindparam("b_id"))


@dataclass(slots=True)
class QueuedMail:
    """A mail to queue: sealed under the key of its subject, or of its data-subject request."""

    id: str
    subject_id: str | None
    request_id: str | None
    sealed: bytes
    created_at: dt.datetime


@dataclass(slots=True)
class KeyHolder:
    """The owner of a leased mail as far as its key goes (a subject or a request)."""

    id: str
    wrapped_key: bytes | None
    master_key_id: str | None


@dataclass(slots=True)
class LeasedMail:
    """A due mail, leased to one deliverer; ``subject`` or ``request`` is its owner (None once
    deleted, which cascades to the mail: only a mail leased just before can see that)."""

    id: str
    sealed: bytes
    attempts: int
    subject: KeyHolder | None
    request: KeyHolder | None


def _rows(mails: list[QueuedMail]) -> list[dict[str, Any]]:
    return [{"id": m.id, "subject_id": m.subject_id, "request_id": m.request_id, "created_at": m.created_at,
             "next_attempt_at": m.created_at, "attempts": 0, "last_error": None, "sealed": m.sealed} for m in mails]


class OutboxRepository:
    """The statements of ``mail_outbox``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    @staticmethod
    def prepare(mails: list[QueuedMail], dialect: Any) -> Prepared:
        """Mails to queue, converted before the write lock (the sign-up's opt-in mail)."""
        return prepare(INSERT_MAIL, _rows(mails), dialect)

    def add(self, mails: list[QueuedMail]) -> None:
        """Queue mails in this transaction: they are sent once it commits, not before."""
        self.tx.executemany(INSERT_MAIL, _rows(mails))

    def lease(self, now: dt.datetime, until: dt.datetime, limit: int) -> list[LeasedMail]:
        """Up to ``limit`` mails due at ``now``, oldest first, with no other attempt before ``until``."""
        rows = self.tx.all(DUE, {"now": now, "n": limit})
        self.tx.executemany(LEASE, [{"b_id": r.id, "b_until": until} for r in rows])
        return [LeasedMail(r.id, r.sealed, r.attempts,
                           KeyHolder(r.subject_id, r.subject_key, r.subject_mk) if r.subject_id is not None else None,
                           KeyHolder(r.request_id, r.request_key, r.request_mk) if r.request_id is not None else None)
                for r in rows]

    def retry(self, mail_id: str, attempts: int, error: str, at: dt.datetime) -> None:
        """A failed attempt: count it, keep its error, try again at ``at``."""
        self.tx.execute(RETRY, {"b_id": mail_id, "b_attempts": attempts, "b_error": error[:200], "b_next": at})

    def remove(self, mail_id: str) -> None:
        """A sent mail, or one that will never be sent."""
        self.tx.execute(DELETE_MAIL, {"b_id": mail_id})
