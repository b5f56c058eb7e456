"""Consent states: ``consent_states``, the current state per subject and purpose.

Each row is written in the same transaction as the ledger event it points to
(``event_seq``). Every statement on the table is here, the set-based consent check too.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, literal_column, select, update

from privacy.storage.lists import in_list
from privacy.storage.models import ConsentState
from privacy.storage.statements import AnyTransaction, as_transaction

_CS = ConsentState.__table__
CHECK_CHUNK = 10_000

COLUMNS = (_CS.c.subject_id, _CS.c.purpose, _CS.c.status, _CS.c.notice_version, _CS.c.recorded_at,
           _CS.c.granted_at, _CS.c.event_seq)
OF_SUBJECT = select(*COLUMNS).where(_CS.c.subject_id == bindparam("sid")).order_by(_CS.c.purpose)
ONE = select(*COLUMNS).where(_CS.c.subject_id == bindparam("sid"), _CS.c.purpose == bindparam("purpose"))
OF_SUBJECTS = select(*COLUMNS).where(_CS.c.subject_id.in_(bindparam("sids", expanding=True)),
                                    _CS.c.purpose.in_(bindparam("purposes", expanding=True)))
SEQS_OF = select(_CS.c.purpose, _CS.c.event_seq).where(_CS.c.subject_id == bindparam("sid"))
# 'granted' written into the SQL, not bound: a plan PostgreSQL keeps for any value could
# not use the index of granted states (partial).
GRANTED_BEFORE = select(*COLUMNS).where(
    _CS.c.purpose == bindparam("purpose"), _CS.c.status == literal_column("'granted'"),
    _CS.c.granted_at < bindparam("cutoff")).limit(bindparam("n"))
INSERT_STATE = insert(_CS)
UPDATE_STATE = update(_CS).where(
    _CS.c.subject_id == bindparam("b_sid"), _CS.c.purpose == bindparam("b_purpose")).values(
    status=bindparam("v_status"), notice_version=bindparam("v_notice_version"), recorded_at=bindparam("v_recorded_at"),
    granted_at=bindparam("v_granted_at"), event_seq=bindparam("v_event_seq"))
DELETE_OF_SUBJECTS = delete(_CS).where(in_list(_CS.c.subject_id, "b_sids"))


@dataclass(slots=True)
class ConsentStateRecord:
    """A purpose's current state for one subject (a row of ``consent_states``); ``event_seq``
    is the ledger event that set it, filled in when the event is appended."""

    subject_id: str
    purpose: str
    status: str
    notice_version: str | None
    recorded_at: dt.datetime
    granted_at: dt.datetime | None
    event_seq: int = 0


class ConsentStateRepository:
    """The statements of ``consent_states``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    # --- reading ----------------------------------------------------------------------

    def of_subject(self, subject_id: str) -> dict[str, ConsentStateRecord]:
        """The subject's states by purpose, in purpose order."""
        return {r.purpose: ConsentStateRecord(*r) for r in self.tx.all(OF_SUBJECT, {"sid": subject_id})}

    def of_subjects(self, subject_ids: list[str], purposes: list[str]) -> dict[str, dict[str, ConsentStateRecord]]:
        """The states of ``purposes`` of each of ``subject_ids`` (a batch), by subject and purpose."""
        out: dict[str, dict[str, ConsentStateRecord]] = {}
        if not subject_ids or not purposes:
            return out
        for r in self.tx.all(OF_SUBJECTS, {"sids": subject_ids, "purposes": purposes}):
            state = ConsentStateRecord(*r)
            out.setdefault(state.subject_id, {})[state.purpose] = state
        return out

    def get(self, subject_id: str, purpose: str) -> ConsentStateRecord | None:
        row = self.tx.first(ONE, {"sid": subject_id, "purpose": purpose})
        return None if row is None else ConsentStateRecord(*row)

    def snapshot(self, subject_id: str) -> frozenset[tuple[str, int]]:
        """(purpose, event_seq) of each of the subject's states: what a recording planned from."""
        return frozenset((r[0], r[1]) for r in self.tx.all(SEQS_OF, {"sid": subject_id}))

    def granted_before(self, purpose: str, cutoff: dt.datetime, limit: int) -> list[ConsentStateRecord]:
        """Up to ``limit`` consents to ``purpose`` granted before ``cutoff`` (and still granted)."""
        return [ConsentStateRecord(*r) for r in self.tx.all(
            GRANTED_BEFORE, {"purpose": purpose, "cutoff": cutoff, "n": limit})]

    def allowed(self, by_email: bool, keys: list[Any], purpose: str, cutoff: dt.datetime | None) -> set[Any]:
        """The allowed keys among ``keys`` (blind indexes or subject ids), in driver-level SQL.

        SQLAlchemy compiles an expanding IN parameter by parameter, which costs more than the
        query itself at 100,000 inputs. PostgreSQL takes the keys as one array (``= ANY``);
        SQLite takes chunks of ``CHECK_CHUNK`` placeholders (its variable limit is 32,766) and
        a CROSS JOIN, which pins the join order to "look each key up in subjects first": from
        about 100 keys on, its planner otherwise walks every granted state of the purpose.
        """
        found: set[Any] = set()
        as_bytes = by_email and self.tx.dialect.name == "postgresql"  # psycopg reads bytea as memoryview
        for rows in self._allowed_rows(by_email, keys, purpose, cutoff, ""):
            if as_bytes:
                found.update(bytes(r[0]) for r in rows)
            else:
                found.update(r[0] for r in rows)
        return found

    def allowed_subjects(self, by_email: bool, keys: list[Any], purpose: str, cutoff: dt.datetime | None
                         ) -> dict[Any, str]:
        """:meth:`allowed`, each allowed key with its subject's id (the same query, reading
        one more column of the rows it reads anyway)."""
        found: dict[Any, str] = {}
        as_bytes = by_email and self.tx.dialect.name == "postgresql"
        for rows in self._allowed_rows(by_email, keys, purpose, cutoff, ", s.id"):
            found.update((bytes(r[0]) if as_bytes else r[0], r[1]) for r in rows)
        return found

    def _allowed_rows(self, by_email: bool, keys: list[Any], purpose: str, cutoff: dt.datetime | None,
                      more: str) -> Iterator[list[Any]]:
        """The rows of :meth:`allowed`'s query, a list per statement; ``more`` is SQL of
        more columns to read."""
        dialect = self.tx.dialect
        column = "email_index" if by_email else "id"
        granted_at = _CS.c.granted_at.type.bind_processor(dialect)
        when = granted_at(cutoff) if (granted_at and cutoff is not None) else cutoff
        base = ("SELECT s.{col}{more} FROM subjects s {join} consent_states c ON c.subject_id = s.id "
                "WHERE c.purpose = {p} AND c.status = 'granted' AND s.restricted = {f}{cut} AND s.{col} {keys}")
        if dialect.name == "postgresql":
            sql = base.format(col=column, more=more, join="JOIN", p="%(purpose)s", f="false", keys="= ANY(%(keys)s)",
                              cut=" AND c.granted_at >= %(cutoff)s" if cutoff is not None else "")
            yield self.tx.driver_sql(sql, {"purpose": purpose, "keys": keys, "cutoff": when})
            return
        for start in range(0, len(keys), CHECK_CHUNK):
            chunk = keys[start:start + CHECK_CHUNK]
            sql = base.format(col=column, more=more, join="CROSS JOIN", p="?", f="0",
                              keys=f"IN ({','.join('?' * len(chunk))})",
                              cut=" AND c.granted_at >= ?" if cutoff is not None else "")
            params = (purpose, *([when] if cutoff is not None else []), *chunk)
            yield self.tx.driver_sql(sql, params)

    # --- writing ----------------------------------------------------------------------

    def insert(self, states: list[ConsentStateRecord]) -> None:
        """First states of their purposes for their subjects."""
        self.tx.executemany(INSERT_STATE, [
            {"subject_id": s.subject_id, "purpose": s.purpose, "status": s.status, "notice_version": s.notice_version,
             "recorded_at": s.recorded_at, "granted_at": s.granted_at, "event_seq": s.event_seq} for s in states])

    def update(self, states: list[ConsentStateRecord]) -> None:
        """New states of purposes their subjects already had a state for."""
        self.tx.executemany(UPDATE_STATE, [
            {"b_sid": s.subject_id, "b_purpose": s.purpose, "v_status": s.status,
             "v_notice_version": s.notice_version, "v_recorded_at": s.recorded_at, "v_granted_at": s.granted_at,
             "v_event_seq": s.event_seq} for s in states])

    def forget(self, subject_id: str) -> None:
        """Delete the subject's states (an erasure; the ledger keeps its events)."""
        self.forget_many([subject_id])

    def forget_many(self, subject_ids: list[str]) -> None:
        """:meth:`forget` for many subjects, one statement."""
        if subject_ids:
            self.tx.execute(DELETE_OF_SUBJECTS, {"b_sids": subject_ids})
