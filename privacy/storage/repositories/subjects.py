"""Subjects and what belongs to them: ``subjects``, ``subject_fields``, ``suppressions``
(an erased person's blind index) and ``held_fields`` (what an erasure kept for a legal hold).

Every statement on these tables is here. The sign-up prepares its rows before the write
lock (``prepare_*``, values converted for the database) and runs them inside it; every
other caller runs the same statements in its transaction.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, literal, null, select, union_all, update

from privacy.storage.lists import in_list
from privacy.storage.models import HeldField, Subject, SubjectField, Suppression
from privacy.storage.statements import AnyTransaction, Prepared, as_transaction, prepare

_S = Subject.__table__
_SF = SubjectField.__table__
_SUP = Suppression.__table__
_HF = HeldField.__table__

KEY_COLUMNS = (_S.c.id, _S.c.email_index, _S.c.wrapped_key, _S.c.master_key_id)
SUBJECT_COLUMNS = (*KEY_COLUMNS, _S.c.restricted, _S.c.created_at, _S.c.last_activity_at)
# The subject with this blind index, or else its suppression entry (an erased person): one
# statement, so that a first sign-up pays no extra query for the erasure check.
BY_INDEX_OR_SUPPRESSED = union_all(
    select(*KEY_COLUMNS, literal(False).label("suppressed")).where(_S.c.email_index == bindparam("idx")),
    select(_SUP.c.subject_id, _SUP.c.email_index, null(), null(), literal(True)).where(
        _SUP.c.email_index == bindparam("idx")))
KEYS_BY_ID = select(*KEY_COLUMNS).where(_S.c.id == bindparam("sid"))
BY_ID = select(*SUBJECT_COLUMNS).where(_S.c.id == bindparam("sid"))
BY_INDEX = select(*SUBJECT_COLUMNS).where(_S.c.email_index == bindparam("idx"))
# Whoever else holds a blind index: another subject, or an erased person's suppression entry.
INDEX_HOLDERS = union_all(
    select(_S.c.id).where(_S.c.email_index == bindparam("idx"), _S.c.id != bindparam("sid")),
    select(_SUP.c.subject_id).where(_SUP.c.email_index == bindparam("idx")))
KEYS_AFTER = select(*KEY_COLUMNS).where(_S.c.id > bindparam("after")).order_by(_S.c.id).limit(bindparam("n"))
KEYS_UNDER = select(*KEY_COLUMNS).where(_S.c.master_key_id == bindparam("mk"))
SUBJECTS_AFTER = select(*SUBJECT_COLUMNS).where(_S.c.id > bindparam("after")).order_by(_S.c.id).limit(bindparam("n"))
# The n-th id after ``after`` (only that one row reaches Python), else the last id there is.
NTH_ID_AFTER = select(_S.c.id).where(_S.c.id > bindparam("after")).order_by(_S.c.id).limit(1).offset(
    bindparam("skip"))
LAST_ID = select(func.max(_S.c.id))
SUBJECTS_OF = select(*SUBJECT_COLUMNS).where(in_list(_S.c.id, "sids")).order_by(_S.c.id)
FIELDS_OF_MANY = select(_SF.c.subject_id, _SF.c.name, _SF.c.ciphertext).where(in_list(_SF.c.subject_id, "sids"))
FIELD_OF_MANY = select(_SF.c.subject_id, _SF.c.ciphertext).where(
    _SF.c.name == bindparam("name"), _SF.c.subject_id.in_(bindparam("sids", expanding=True)))
FIELD_NAMES = select(_SF.c.name).where(_SF.c.subject_id == bindparam("sid"))
FIELDS = select(_SF.c.name, _SF.c.ciphertext).where(_SF.c.subject_id == bindparam("sid")).order_by(_SF.c.name)

INSERT_SUBJECT = insert(_S)
TOUCH = update(_S).where(_S.c.id == bindparam("b_sid")).values(
    updated_at=bindparam("b_now"), last_activity_at=bindparam("b_now"))
UPDATED = update(_S).where(_S.c.id == bindparam("b_sid")).values(updated_at=bindparam("b_now"))
NEW_INDEX = update(_S).where(_S.c.id == bindparam("b_sid")).values(
    email_index=bindparam("b_index"), updated_at=bindparam("b_now"))
RESTRICT = update(_S).where(_S.c.id == bindparam("b_sid")).values(
    restricted=bindparam("b_restricted"), updated_at=bindparam("b_now"))
SHRED = update(_S).where(_S.c.id == bindparam("b_sid")).values(
    wrapped_key=null(), master_key_id=null(), shredded_at=bindparam("b_now"))
REWRAP = update(_S).where(_S.c.id == bindparam("b_sid")).values(
    wrapped_key=bindparam("b_wrapped"), master_key_id=bindparam("b_mk"))
DELETE_FIELDS_OF_MANY = delete(_SF).where(in_list(_SF.c.subject_id, "b_sids"))
DELETE_SUBJECTS = delete(_S).where(in_list(_S.c.id, "b_sids"))
INSERT_FIELD = insert(_SF)
UPDATE_FIELD = update(_SF).where(_SF.c.subject_id == bindparam("b_sid"), _SF.c.name == bindparam("b_name")).values(
    ciphertext=bindparam("b_ciphertext"), updated_at=bindparam("b_now"))
DELETE_FIELD = delete(_SF).where(_SF.c.subject_id == bindparam("b_sid"), _SF.c.name == bindparam("b_name"))
INSERT_SUPPRESSION = insert(_SUP)
INSERT_HELD = insert(_HF)
RELEASE_HELD = delete(_HF).where(_HF.c.until <= bindparam("b_now"))
DROP_HELD_UNDER = delete(_HF).where(_HF.c.key_name == bindparam("b_key"))


@dataclass(slots=True)
class NewSubject:
    """A subject a sign-up creates: its id, blind index and wrapped data key."""

    id: str
    email_index: bytes
    wrapped_key: bytes
    master_key_id: str


@dataclass(slots=True)
class SubjectRecord:
    """A stored subject (a row of ``subjects`` without its bookkeeping times)."""

    id: str
    email_index: bytes
    wrapped_key: bytes | None
    master_key_id: str | None
    restricted: bool
    created_at: dt.datetime
    last_activity_at: dt.datetime


@dataclass(slots=True)
class HeldValue:
    """A field an erasure keeps for a legal hold, sealed under the hold's key."""

    name: str
    hold: str
    until: dt.datetime
    key_name: str
    ciphertext: bytes


def _record(row: Any) -> SubjectRecord | None:
    return None if row is None else SubjectRecord(*row)


class SubjectRepository:
    """The statements of a subject, its personal fields, suppressions and held fields."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    # --- the sign-up's rows, converted before the write lock -----------------------------

    @staticmethod
    def prepare_new(subject: NewSubject, now: dt.datetime, dialect: Any) -> Prepared:
        return prepare(INSERT_SUBJECT, [{
            "id": subject.id, "email_index": subject.email_index, "wrapped_key": subject.wrapped_key,
            "master_key_id": subject.master_key_id, "restricted": False, "created_at": now, "updated_at": now,
            "last_activity_at": now, "shredded_at": None}], dialect)

    @staticmethod
    def prepare_touch(subject_id: str, now: dt.datetime, dialect: Any) -> Prepared:
        """A known subject signs up again: its activity time moves (retention counts from it)."""
        return prepare(TOUCH, [{"b_sid": subject_id, "b_now": now}], dialect)

    @staticmethod
    def prepare_fields(subject_id: str, sealed: dict[str, bytes], stored: set[str], now: dt.datetime,
                       dialect: Any) -> list[Prepared]:
        """Sealed field values to store: new fields inserted, ``stored`` ones overwritten."""
        new, changed = _field_rows(subject_id, sealed, stored, now)
        return [prepare(INSERT_FIELD, new, dialect), prepare(UPDATE_FIELD, changed, dialect)]

    # --- reading ----------------------------------------------------------------------

    def keys_by_id(self, subject_id: str) -> Any:
        """The subject's id, blind index and wrapped key (or None)."""
        return self.tx.first(KEYS_BY_ID, {"sid": subject_id})

    def keys_or_suppression(self, email_index: bytes) -> Any:
        """The subject with this blind index, or its suppression entry (``suppressed`` true), or None."""
        return self.tx.first(BY_INDEX_OR_SUPPRESSED, {"idx": email_index})

    def get(self, subject_id: str) -> SubjectRecord | None:
        return _record(self.tx.first(BY_ID, {"sid": subject_id}))

    def by_email_index(self, email_index: bytes) -> SubjectRecord | None:
        return _record(self.tx.first(BY_INDEX, {"idx": email_index}))

    def index_taken(self, email_index: bytes, subject_id: str) -> bool:
        """Whether another subject, or an erased person, holds the blind index."""
        return self.tx.first(INDEX_HOLDERS, {"idx": email_index, "sid": subject_id}) is not None

    def field_names(self, subject_id: str) -> set[str]:
        return {r.name for r in self.tx.all(FIELD_NAMES, {"sid": subject_id})}

    def fields(self, subject_id: str) -> dict[str, bytes]:
        """The subject's sealed fields by name, in name order."""
        return {r.name: r.ciphertext for r in self.tx.all(FIELDS, {"sid": subject_id})}

    def keys_after(self, after: str, limit: int) -> list[Any]:
        """Up to ``limit`` subjects' wrapped keys in id order after ``after`` (a walk of the table)."""
        return self.tx.all(KEYS_AFTER, {"after": after, "n": limit})

    def keys_under(self, master_key_id: str) -> list[Any]:
        return self.tx.all(KEYS_UNDER, {"mk": master_key_id})

    def after(self, after: str, limit: int) -> list[SubjectRecord]:
        """Up to ``limit`` subjects in id order after ``after`` (a walk of the table in batches)."""
        return [SubjectRecord(*r) for r in self.tx.all(SUBJECTS_AFTER, {"after": after, "n": limit})]

    def batch_end(self, after: str, size: int) -> str | None:
        """The last id of the next ``size`` subjects in id order after ``after`` (None when
        there are none): a walk of the table in id ranges that reads no rows."""
        row = self.tx.first(NTH_ID_AFTER, {"after": after, "skip": size - 1})
        if row is not None:
            return str(row.id)
        last = self.tx.first(LAST_ID, {})
        return str(last[0]) if last is not None and last[0] is not None and last[0] > after else None

    def of_ids(self, subject_ids: list[str]) -> list[SubjectRecord]:
        """The subjects with these ids, in id order."""
        if not subject_ids:
            return []
        return [SubjectRecord(*r) for r in self.tx.all(SUBJECTS_OF, {"sids": subject_ids})]

    def fields_of_many(self, subject_ids: list[str]) -> dict[str, dict[str, bytes]]:
        """Each subject's sealed fields by name (subjects without fields are left out)."""
        out: dict[str, dict[str, bytes]] = {}
        if subject_ids:
            for r in self.tx.all(FIELDS_OF_MANY, {"sids": subject_ids}):
                out.setdefault(r.subject_id, {})[r.name] = r.ciphertext
        return out

    def field_of(self, subject_ids: list[str], name: str) -> dict[str, bytes]:
        """The sealed value of field ``name`` of each of ``subject_ids`` that has one."""
        if not subject_ids:
            return {}
        return {r.subject_id: r.ciphertext for r in self.tx.all(FIELD_OF_MANY, {"name": name, "sids": subject_ids})}

    # --- writing ----------------------------------------------------------------------

    def save_fields(self, subject_id: str, sealed: dict[str, bytes], stored: set[str], now: dt.datetime) -> None:
        """As :meth:`prepare_fields`, in this transaction."""
        new, changed = _field_rows(subject_id, sealed, stored, now)
        self.tx.executemany(INSERT_FIELD, new)
        self.tx.executemany(UPDATE_FIELD, changed)

    def updated(self, subject_id: str, now: dt.datetime, email_index: bytes | None = None) -> None:
        """The subject was changed (with a new blind index when its e-mail was corrected)."""
        if email_index is None:
            self.tx.execute(UPDATED, {"b_sid": subject_id, "b_now": now})
        else:
            self.tx.execute(NEW_INDEX, {"b_sid": subject_id, "b_index": email_index, "b_now": now})

    def set_restricted(self, subject_id: str, restricted: bool, now: dt.datetime) -> None:
        self.tx.execute(RESTRICT, {"b_sid": subject_id, "b_restricted": restricted, "b_now": now})

    def shred(self, subject_id: str, now: dt.datetime) -> None:
        """Destroy the subject's wrapped data key: every field sealed under it becomes unreadable."""
        self.tx.execute(SHRED, {"b_sid": subject_id, "b_now": now})

    def rewrap(self, keys: Iterable[tuple[str, bytes, str]]) -> None:
        """Store (subject id, wrapped key, master key id) for each subject (master-key rotation)."""
        self.tx.executemany(REWRAP, [{"b_sid": sid, "b_wrapped": wrapped, "b_mk": mk} for sid, wrapped, mk in keys])

    def erase(self, subject_id: str, now: dt.datetime) -> None:
        """Shred the subject's key, then delete its fields and itself (the database cascades
        to its confirmations and queued mail; its consent states go first, see
        ``ConsentStateRepository.forget``)."""
        self.shred(subject_id, now)
        self.erase_many([subject_id])

    def erase_many(self, subject_ids: list[str]) -> None:
        """:meth:`erase` for many subjects in one transaction: their fields, then the rows with
        their wrapped keys (two statements; the rows go in the same transaction as the
        keys, so no separate shredding is needed)."""
        if subject_ids:
            self.tx.execute(DELETE_FIELDS_OF_MANY, {"b_sids": subject_ids})
            self.tx.execute(DELETE_SUBJECTS, {"b_sids": subject_ids})

    def drop_fields(self, subject_id: str, names: Iterable[str]) -> None:
        """Delete the named fields of the subject (minimisation: no purpose needs them any more)."""
        self.drop_many([(subject_id, name) for name in sorted(names)])

    def drop_many(self, fields: list[tuple[str, str]]) -> None:
        """Delete each (subject id, field name)."""
        if fields:
            self.tx.executemany(DELETE_FIELD, [{"b_sid": sid, "b_name": name} for sid, name in fields])

    def updated_many(self, subject_ids: list[str], now: dt.datetime) -> None:
        """Mark the subjects changed (no new blind index)."""
        if subject_ids:
            self.tx.executemany(UPDATED, [{"b_sid": sid, "b_now": now} for sid in subject_ids])

    def suppress(self, email_index: bytes, subject_id: str, reason: str, request_id: str | None,
                 now: dt.datetime) -> None:
        """Keep an erased person's blind index: checks deny it, a re-import cannot bring it back."""
        self.tx.execute(INSERT_SUPPRESSION, [{"email_index": email_index, "subject_id": subject_id, "reason": reason,
                                              "request_id": request_id, "created_at": now}])

    def hold(self, subject_id: str, held: list[HeldValue], now: dt.datetime) -> None:
        self.hold_many({subject_id: held}, now)

    def hold_many(self, held: dict[str, list[HeldValue]], now: dt.datetime) -> None:
        """Store each subject's held fields (subject id -> its held values)."""
        rows = [{"subject_id": sid, "name": h.name, "hold": h.hold, "until": h.until, "key_name": h.key_name,
                 "ciphertext": h.ciphertext, "created_at": now} for sid, values in held.items() for h in values]
        if rows:
            self.tx.execute(INSERT_HELD, rows)

    def release_held(self, now: dt.datetime) -> int:
        """Delete the held fields whose hold has ended; returns how many."""
        return int(self.tx.execute(RELEASE_HELD, {"b_now": now}).rowcount or 0)

    def drop_held_under(self, key_names: list[str]) -> None:
        """Delete every held field sealed under one of ``key_names`` (keys about to be destroyed)."""
        self.tx.executemany(DROP_HELD_UNDER, [{"b_key": name} for name in key_names])


def _field_rows(subject_id: str, sealed: dict[str, bytes], stored: set[str], now: dt.datetime
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    new = [{"subject_id": subject_id, "name": n, "ciphertext": c, "updated_at": now}
           for n, c in sorted(sealed.items()) if n not in stored]
    changed = [{"b_sid": subject_id, "b_name": n, "b_ciphertext": c, "b_now": now}
               for n, c in sorted(sealed.items()) if n in stored]
    return new, changed
