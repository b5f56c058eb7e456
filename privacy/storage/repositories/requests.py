"""Data-subject requests: ``requests`` (a request's type, status, dates and the key its
details are sealed under), ``request_tokens`` (the hashes of the mailed links),
``request_tasks`` (each system's share of a request) and ``packages`` (access and
portability packages on disk), one aggregate: a request's tokens, tasks and package are
deleted with it.

Every statement on these tables is here; what a request may become, when, and what is
sealed is :mod:`privacy.requests`'s. A request is read as a :class:`RequestRecord`
(locked for the transaction when it is to change) and every change goes through a method
here, which writes it and keeps the record in step. The statements that take a list of
statuses run on a unit of work's session (an expanding parameter).
"""
from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, null, or_, select, update

from privacy.storage.models import DataRequest, ExportPackage, RequestTask, RequestToken
from privacy.storage.statements import AnyTransaction, as_transaction

_R = DataRequest.__table__
_TOK = RequestToken.__table__
_T = RequestTask.__table__
_P = ExportPackage.__table__

REQUEST_COLUMNS = (_R.c.id, _R.c.type, _R.c.status, _R.c.email_index, _R.c.subject_id, _R.c.wrapped_key,
                   _R.c.master_key_id, _R.c.sealed, _R.c.language, _R.c.received_at, _R.c.due_at,
                   _R.c.extended_until, _R.c.verified_at, _R.c.completed_at, _R.c.updated_at)
GET = select(*REQUEST_COLUMNS).where(_R.c.id == bindparam("rid"))
# Locked for the transaction (PostgreSQL): two clicks, or a click and the scheduler, move a
# request one at a time (SQLite's writers are serialised already).
GET_LOCKED = GET.with_for_update()
IDS_WITH_STATUS = select(_R.c.id).where(_R.c.status == bindparam("status"))
IDS_RECEIVED_BEFORE = select(_R.c.id).where(_R.c.status == bindparam("status"),
                                            _R.c.received_at <= bindparam("cutoff"))
IDS_KEYED_CLOSED_BEFORE = select(_R.c.id).where(
    _R.c.status.in_(bindparam("statuses", expanding=True)), _R.c.wrapped_key.is_not(None),
    func.coalesce(_R.c.completed_at, _R.c.updated_at) <= bindparam("cutoff"))
# A person's requests: by the address they were opened with, or by the subject they found.
OF_PERSON = select(*REQUEST_COLUMNS).where(or_(_R.c.email_index == bindparam("idx"),
                                               _R.c.subject_id == bindparam("sid"))).order_by(_R.c.received_at)
IDS_KEYED_OF_PERSON = select(_R.c.id).where(
    or_(_R.c.subject_id == bindparam("sid"), _R.c.email_index == bindparam("idx")), _R.c.id != bindparam("rid"),
    _R.c.status.in_(bindparam("statuses", expanding=True)), _R.c.wrapped_key.is_not(None))
KEY_COLUMNS = (_R.c.id, _R.c.wrapped_key, _R.c.master_key_id)
KEYS_AFTER = select(*KEY_COLUMNS).where(_R.c.id > bindparam("after")).order_by(_R.c.id).limit(bindparam("n"))
KEYS_UNDER = select(*KEY_COLUMNS).where(_R.c.master_key_id == bindparam("mk"))

INSERT_REQUEST = insert(_R)
_ONE = _R.c.id == bindparam("b_rid")
SET_STATUS = update(_R).where(_ONE).values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
VERIFIED = update(_R).where(_ONE).values(subject_id=bindparam("b_sid"), verified_at=bindparam("b_now"))
COMPLETED = update(_R).where(_ONE).values(completed_at=bindparam("b_now"))
EXTENDED = update(_R).where(_ONE).values(extended_until=bindparam("b_until"), sealed=bindparam("b_sealed"),
                                         updated_at=bindparam("b_now"))
RESEALED = update(_R).where(_ONE).values(sealed=bindparam("b_sealed"))
FORGET = update(_R).where(_ONE).values(wrapped_key=null(), master_key_id=null(), sealed=null())
FORGET_UPDATED = FORGET.values(updated_at=bindparam("b_now"))
REWRAP = update(_R).where(_ONE).values(wrapped_key=bindparam("b_wrapped"), master_key_id=bindparam("b_mk"))

TOKEN_COLUMNS = (_TOK.c.token_hash, _TOK.c.request_id, _TOK.c.purpose, _TOK.c.expires_at, _TOK.c.uses_left,
                 _TOK.c.used_at)
TOKEN_LOCKED = select(*TOKEN_COLUMNS).where(_TOK.c.token_hash == bindparam("hash")).with_for_update()
INSERT_TOKEN = insert(_TOK)
SPEND_TOKEN = update(_TOK).where(_TOK.c.token_hash == bindparam("b_hash")).values(
    uses_left=bindparam("b_left"), used_at=bindparam("b_now"))

# A forgotten request's tasks lose their results and whom they looked for.
CLEAR_RESULTS = update(_T).where(_T.c.request_id == bindparam("b_rid")).values(
    result=null(), payload=null(), wrapped_key=null(), master_key_id=null())

PACKAGE_COLUMNS = (_P.c.id, _P.c.request_id, _P.c.kind, _P.c.file_name, _P.c.size, _P.c.created_at,
                   _P.c.expires_at, _P.c.deleted_at)
PACKAGE_OF = select(*PACKAGE_COLUMNS).where(_P.c.request_id == bindparam("rid"))
EXPIRED_PACKAGES = select(*PACKAGE_COLUMNS).where(_P.c.expires_at <= bindparam("now"), _P.c.deleted_at.is_(None))
INSERT_PACKAGE = insert(_P)
PACKAGE_DELETED = update(_P).where(_P.c.id == bindparam("b_id")).values(deleted_at=bindparam("b_now"))
DROP_PACKAGE = delete(_P).where(_P.c.request_id == bindparam("b_rid"))
EXPIRE_PACKAGE = update(_P).where(_P.c.request_id == bindparam("b_rid"), _P.c.deleted_at.is_(None)).values(
    expires_at=bindparam("b_now"))


@functools.lru_cache(maxsize=32)
def _queue(status: bool, type_: bool, overdue: bool | None, due_before: bool) -> Any:
    """The officer's queue with the filters that are given (one statement per combination)."""
    deadline = func.coalesce(_R.c.extended_until, _R.c.due_at)
    late = _R.c.status.in_(bindparam("open", expanding=True)) & (deadline < bindparam("now"))
    query = select(*REQUEST_COLUMNS)
    if status:
        query = query.where(_R.c.status == bindparam("status"))
    if type_:
        query = query.where(_R.c.type == bindparam("type"))
    if overdue is not None:
        query = query.where(late if overdue else ~late)
    if due_before:
        query = query.where(deadline < bindparam("due_before"))
    return query.order_by(deadline, _R.c.received_at, _R.c.id).limit(bindparam("n"))


@dataclass(slots=True)
class RequestRecord:
    """A stored request (a row of ``requests``); ``sealed`` holds the customer's details
    under the request's own key (``wrapped_key``), both None once forgotten."""

    id: str
    type: str
    status: str
    email_index: bytes
    subject_id: str | None
    wrapped_key: bytes | None
    master_key_id: str | None
    sealed: bytes | None
    language: str
    received_at: dt.datetime
    due_at: dt.datetime
    extended_until: dt.datetime | None
    verified_at: dt.datetime | None
    completed_at: dt.datetime | None
    updated_at: dt.datetime


@dataclass(slots=True)
class TokenRecord:
    """A mailed link's token, by its hash: whose, what for, until when and how often still."""

    token_hash: str
    request_id: str
    purpose: str
    expires_at: dt.datetime
    uses_left: int
    used_at: dt.datetime | None


@dataclass(slots=True)
class PackageRecord:
    """An access or portability package: its sealed file and how long it lasts."""

    id: str
    request_id: str
    kind: str
    file_name: str
    size: int
    created_at: dt.datetime
    expires_at: dt.datetime
    deleted_at: dt.datetime | None


def _columns(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


class RequestRepository:
    """The statements of a request, its tokens, its tasks and its package."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    # --- requests ---------------------------------------------------------------------

    def get(self, request_id: str, lock: bool = False) -> RequestRecord | None:
        """The request; with ``lock``, its row is locked until the transaction ends (PostgreSQL)."""
        row = self.tx.first(GET_LOCKED if lock else GET, {"rid": request_id})
        return None if row is None else RequestRecord(*row)

    def ids_with_status(self, status: str) -> list[str]:
        return [r.id for r in self.tx.all(IDS_WITH_STATUS, {"status": status})]

    def ids_received_before(self, status: str, cutoff: dt.datetime) -> list[str]:
        """The requests in ``status`` received at or before ``cutoff``."""
        return [r.id for r in self.tx.all(IDS_RECEIVED_BEFORE, {"status": status, "cutoff": cutoff})]

    def ids_keyed_closed_before(self, statuses: Iterable[str], cutoff: dt.datetime) -> list[str]:
        """The requests in one of ``statuses`` that still have a key, closed (or last changed) by ``cutoff``."""
        return [r.id for r in self.tx.all(IDS_KEYED_CLOSED_BEFORE, {"statuses": list(statuses), "cutoff": cutoff})]

    def of_person(self, email_index: bytes, subject_id: str | None) -> list[RequestRecord]:
        """The requests opened with this blind index or found this subject, oldest first."""
        return [RequestRecord(*r) for r in self.tx.all(OF_PERSON, {"idx": email_index, "sid": subject_id})]

    def ids_keyed_of_person(self, email_index: bytes, subject_id: str, statuses: Iterable[str],
                            except_id: str) -> list[str]:
        """The person's other requests in one of ``statuses`` that still have a key."""
        return [r.id for r in self.tx.all(IDS_KEYED_OF_PERSON, {
            "idx": email_index, "sid": subject_id, "statuses": list(statuses), "rid": except_id})]

    def queue(self, now: dt.datetime, open_statuses: Iterable[str], status: str | None = None,
              type_: str | None = None, overdue: bool | None = None, due_before: dt.datetime | None = None,
              limit: int = 500) -> list[RequestRecord]:
        """Requests soonest deadline first, filtered by what is given; overdue means in one of
        ``open_statuses`` with its deadline (the extended one, if any) before ``now``."""
        stmt = _queue(status is not None, type_ is not None, overdue, due_before is not None)
        return [RequestRecord(*r) for r in self.tx.all(stmt, {  # a filter not given ignores its value
            "open": list(open_statuses), "now": now, "status": status, "type": type_, "due_before": due_before,
            "n": limit})]

    def keys_after(self, after: str, limit: int) -> list[Any]:
        """Up to ``limit`` requests' wrapped keys in id order after ``after`` (a walk of the table)."""
        return self.tx.all(KEYS_AFTER, {"after": after, "n": limit})

    def keys_under(self, master_key_id: str) -> list[Any]:
        return self.tx.all(KEYS_UNDER, {"mk": master_key_id})

    def add(self, request: RequestRecord) -> None:
        self.tx.execute(INSERT_REQUEST, [_columns(request)])

    def set_status(self, request: RequestRecord, status: str, now: dt.datetime) -> None:
        self.tx.execute(SET_STATUS, {"b_rid": request.id, "b_status": status, "b_now": now})
        request.status, request.updated_at = status, now

    def set_verified(self, request: RequestRecord, subject_id: str | None, now: dt.datetime) -> None:
        """The customer followed the verification link; ``subject_id`` is whom the address found."""
        self.tx.execute(VERIFIED, {"b_rid": request.id, "b_sid": subject_id, "b_now": now})
        request.subject_id, request.verified_at = subject_id, now

    def set_completed(self, request: RequestRecord, now: dt.datetime) -> None:
        self.tx.execute(COMPLETED, {"b_rid": request.id, "b_now": now})
        request.completed_at = now

    def set_extended(self, request: RequestRecord, until: dt.datetime, sealed: bytes, now: dt.datetime) -> None:
        """The deadline moves to ``until``; ``sealed`` are the details with the reason."""
        self.tx.execute(EXTENDED, {"b_rid": request.id, "b_until": until, "b_sealed": sealed, "b_now": now})
        request.extended_until, request.sealed, request.updated_at = until, sealed, now

    def set_sealed(self, request: RequestRecord, sealed: bytes) -> None:
        """New sealed details (under the request's key, which does not change)."""
        self.tx.execute(RESEALED, {"b_rid": request.id, "b_sealed": sealed})
        request.sealed = sealed

    def forget(self, request_id: str, now: dt.datetime | None = None) -> None:
        """Destroy the request's key and its sealed details and task results; with ``now``,
        the request's ``updated_at`` moves too."""
        if now is None:
            self.tx.execute(FORGET, {"b_rid": request_id})
        else:
            self.tx.execute(FORGET_UPDATED, {"b_rid": request_id, "b_now": now})
        self.tx.execute(CLEAR_RESULTS, {"b_rid": request_id})

    def rewrap(self, keys: Iterable[tuple[str, bytes, str]]) -> None:
        """Store (request id, wrapped key, master key id) for each request (master-key rotation)."""
        self.tx.executemany(REWRAP, [{"b_rid": rid, "b_wrapped": wrapped, "b_mk": mk} for rid, wrapped, mk in keys])

    # --- tokens -----------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        self.tx.execute(INSERT_TOKEN, [_columns(token)])

    def token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, locked until the transaction ends (PostgreSQL)."""
        row = self.tx.first(TOKEN_LOCKED, {"hash": token_hash})
        return None if row is None else TokenRecord(*row)

    def spend(self, token: TokenRecord, now: dt.datetime) -> None:
        """One use of ``token`` is spent at ``now``."""
        self.tx.execute(SPEND_TOKEN, {"b_hash": token.token_hash, "b_left": token.uses_left - 1, "b_now": now})
        token.uses_left, token.used_at = token.uses_left - 1, now

    # --- packages ---------------------------------------------------------------------

    def add_package(self, package: PackageRecord) -> None:
        self.tx.execute(INSERT_PACKAGE, [_columns(package)])

    def package_of(self, request_id: str) -> PackageRecord | None:
        row = self.tx.first(PACKAGE_OF, {"rid": request_id})
        return None if row is None else PackageRecord(*row)

    def expired_packages(self, now: dt.datetime) -> list[PackageRecord]:
        """Packages whose files are still there though they expired at or before ``now``."""
        return [PackageRecord(*r) for r in self.tx.all(EXPIRED_PACKAGES, {"now": now})]

    def package_deleted(self, package_id: str, now: dt.datetime) -> bool:
        """The package's file was deleted at ``now``; False when its row is gone (its request was)."""
        return bool(self.tx.execute(PACKAGE_DELETED, {"b_id": package_id, "b_now": now}).rowcount == 1)

    def drop_package(self, request_id: str) -> None:
        """Forget the request's package row (a newer package replaces it)."""
        self.tx.execute(DROP_PACKAGE, {"b_rid": request_id})

    def expire_package(self, request_id: str, now: dt.datetime) -> None:
        """The request's package, if its file is still there, expires at ``now`` (deleted at the next sweep)."""
        self.tx.execute(EXPIRE_PACKAGE, {"b_rid": request_id, "b_now": now})
