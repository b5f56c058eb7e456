"""The write path of a consent recording, split so the write lock is held briefly.

``current`` reads the subject's current state in a short read transaction; ``plan`` then
does, with no transaction open, all the work that needs no lock: transitions,
minimisation, field encryption, the signed receipt, the double opt-in link (a MAC: nothing
stored, :mod:`privacy.consent.confirm_links`) and the sealed note its mail is written from.
``write`` then runs inside the write transaction: it checks that the subject's state is
still the one planned from (optimistic concurrency; a changed state means plan again),
appends the ledger events (the only step that needs the chain head) and stores the rows
with statements built once at import.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, literal, null, select, union_all, update

from privacy.consent import confirm_links
from privacy.consent.mail import double_opt_in_note
from privacy.consent.receipts import build_receipt
from privacy.context import PrivacyContext, as_json_time
from privacy.errors import Conflict
from privacy.ids import new_id
from privacy.ledger import append_consent_events_raw
from privacy.mail.outbox import INSERT_MAIL, sealed_row
from privacy.policy.catalogue import Catalogue
from privacy.policy.file import PurposeDef
from privacy.storage.models import ConsentState, Subject, SubjectField, Suppression
from privacy.storage.statements import Prepared, RawTransaction, prepare

ACTIVE = ("granted", "pending")

_S = Subject.__table__
_CS = ConsentState.__table__
_SF = SubjectField.__table__
SUBJECT_COLUMNS = (_S.c.id, _S.c.email_index, _S.c.wrapped_key, _S.c.master_key_id)
_SUP = Suppression.__table__
# The subject with this blind index, or else its suppression entry (an erased person): one
# statement, so that a first sign-up pays no extra query for the erasure check.
SUBJECT_BY_INDEX = union_all(
    select(*SUBJECT_COLUMNS, literal(False).label("suppressed")).where(_S.c.email_index == bindparam("idx")),
    select(_SUP.c.subject_id, _SUP.c.email_index, null(), null(), literal(True)).where(
        _SUP.c.email_index == bindparam("idx")))
SUBJECT_BY_ID = select(*SUBJECT_COLUMNS).where(_S.c.id == bindparam("sid"))
STATES_OF = select(_CS.c.purpose, _CS.c.status, _CS.c.notice_version, _CS.c.recorded_at, _CS.c.granted_at,
                   _CS.c.event_seq).where(_CS.c.subject_id == bindparam("sid"))
SEQS_OF = select(_CS.c.purpose, _CS.c.event_seq).where(_CS.c.subject_id == bindparam("sid"))
FIELD_NAMES_OF = select(_SF.c.name).where(_SF.c.subject_id == bindparam("sid"))
INSERT_SUBJECT = insert(_S)
TOUCH_SUBJECT = update(_S).where(_S.c.id == bindparam("b_sid")).values(
    updated_at=bindparam("b_now"), last_activity_at=bindparam("b_now"))
INSERT_STATE = insert(_CS)
UPDATE_STATE = update(_CS).where(
    _CS.c.subject_id == bindparam("b_sid"), _CS.c.purpose == bindparam("b_purpose")).values(
    status=bindparam("v_status"), notice_version=bindparam("v_notice_version"), recorded_at=bindparam("v_recorded_at"),
    granted_at=bindparam("v_granted_at"), event_seq=bindparam("v_event_seq"))
INSERT_FIELD = insert(_SF)
UPDATE_FIELD = update(_SF).where(_SF.c.subject_id == bindparam("b_sid"), _SF.c.name == bindparam("b_name")).values(
    ciphertext=bindparam("b_ciphertext"), updated_at=bindparam("b_now"))


@dataclass
class State:
    """A purpose's current state for one subject (a row of ``consent_states``)."""

    status: str
    notice_version: str | None
    recorded_at: dt.datetime
    granted_at: dt.datetime | None
    event_seq: int


def lapsed(state: State | ConsentState, purpose: PurposeDef | None, now: dt.datetime) -> bool:
    if purpose is None or not purpose.consent_valid_days or state.granted_at is None:
        return False
    return state.granted_at < now - dt.timedelta(days=purpose.consent_valid_days)


def state_view(state: State | ConsentState, purpose: PurposeDef | None, now: dt.datetime) -> dict[str, Any]:
    """A purpose's state as clients read it; a lapsed consent shows as ``expired``."""
    status = state.status
    if status == "granted" and lapsed(state, purpose, now):
        status = "expired"
    return {"status": status, "notice_version": state.notice_version, "recorded_at": as_json_time(state.recorded_at)}


def transition(current: str | None, wants: bool, doi: bool, notice_changed: bool) -> tuple[str, str] | None:
    """(event action, resulting status) for a requested change, or None when nothing changes."""
    if wants:
        if current in ACTIVE and not notice_changed:
            return None
        if doi and current != "granted":
            return "granted", "pending"
        return "granted", "granted"
    if current in ACTIVE:
        return "withdrawn", "withdrawn"
    if current is None:
        return "declined", "declined"
    return None


@dataclass
class Plan:
    """Everything one recording will write, computed before the write lock is taken."""

    subject_id: str
    is_new: bool
    snapshot: frozenset[tuple[str, int]]
    subject_row: dict[str, Any] | None
    events: list[dict[str, Any]]
    states: dict[str, dict[str, Any]]          # purpose -> row to insert or update (event_seq filled at write)
    existing_states: set[str]
    fields_insert: list[dict[str, Any]]
    fields_update: list[dict[str, Any]]
    body: dict[str, Any]
    outbox: list[dict[str, Any]] = field(default_factory=list)


class Planner:
    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self._indexes: dict[str, bytes] = {}

    def blind_index(self, email: str) -> bytes:
        """The e-mail's blind index, computed once per recording (looked up, then stored)."""
        index = self._indexes.get(email)
        if index is None:
            index = self._indexes[email] = self.ctx.crypto.blind_index(email)
        return index

    def find_subject(self, conn: RawTransaction, values: dict[str, str], subject_id: str | None) -> Any:
        if subject_id is not None:
            return conn.first(SUBJECT_BY_ID, {"sid": subject_id})
        subject = conn.first(SUBJECT_BY_INDEX, {"idx": self.blind_index(values["email"])})
        if subject is not None and subject.suppressed:
            raise Conflict("this person's data was erased; a new sign-up needs the erasure to be lifted",
                           {"subject.email": ["belongs to an erased subject"]}, code="subject_erased")
        return subject

    def current(self, conn: RawTransaction, subject: Any) -> tuple[dict[str, State], set[str]]:
        """A known subject's consent states and the names of its stored fields (none for a new one)."""
        if subject is None:
            return {}, set()
        states = {r.purpose: State(r.status, r.notice_version, r.recorded_at, r.granted_at, r.event_seq)
                  for r in conn.all(STATES_OF, {"sid": subject.id})}
        return states, {r.name for r in conn.all(FIELD_NAMES_OF, {"sid": subject.id})}

    def plan(self, subject: Any, known: tuple[dict[str, State], set[str]], source: dict[str, Any],
             values: dict[str, str], wishes: dict[str, bool], notices: dict[str, tuple[str | None, str | None]],
             catalogue: Catalogue, now: dt.datetime) -> Plan:
        """Everything the recording will write, from what :meth:`current` read (``known``):
        no database access, so it runs after the read transaction has ended."""
        crypto = self.ctx.crypto
        states, existing_fields = dict(known[0]), known[1]
        subject_row = None
        if subject is None:
            subject_id = new_id()
            dek, wrapped = crypto.new_data_key(subject_id)
            subject_row = {"id": subject_id, "email_index": self.blind_index(values["email"]),
                           "wrapped_key": wrapped, "master_key_id": crypto.master_key_id, "restricted": False,
                           "created_at": now, "updated_at": now, "last_activity_at": now, "shredded_at": None}
        else:
            subject_id = subject.id
            dek = crypto.data_key(subject)
        snapshot = frozenset((p, s.event_seq) for p, s in states.items())
        existing_states = set(states)
        source_json = json.dumps(source, sort_keys=True)
        events, state_rows = [], {}
        for code, wants in wishes.items():
            purpose = catalogue.purposes[code]
            current = states.get(code)
            version, digest = notices[code]
            cur_status = current.status if current else None
            if current is not None and cur_status == "granted" and lapsed(current, purpose, now):
                cur_status = "expired"
            changed_notice = current is not None and version is not None and current.notice_version != version
            step = transition(cur_status, wants, purpose.double_opt_in, changed_notice)
            if step is None:
                continue
            action, status = step
            events.append({"subject_id": subject_id, "purpose": code, "action": action, "status": status,
                           "notice_version": version, "text_hash": digest, "source": source_json,
                           "recorded_at": now})
            granted_at = now if status == "granted" else (current.granted_at if current else None)
            states[code] = State(status, version, now, granted_at, 0)
            state_rows[code] = {"subject_id": subject_id, "purpose": code, "status": status,
                                "notice_version": version, "recorded_at": now, "granted_at": granted_at}
        needed = {f for code, st in states.items() if st.status in ACTIVE and code in catalogue.purposes
                  for f in catalogue.purposes[code].fields}
        sealed = {name: crypto.encrypt_field(dek, subject_id, name, values[name]) for name in values.keys() & needed}
        fields_insert = [{"subject_id": subject_id, "name": n, "ciphertext": c, "updated_at": now}
                         for n, c in sorted(sealed.items()) if n not in existing_fields]
        fields_update = [{"b_sid": subject_id, "b_name": n, "b_ciphertext": c, "b_now": now}
                         for n, c in sorted(sealed.items()) if n in existing_fields]
        consents = {code: state_view(states[code], catalogue.purposes[code], now) for code in wishes if code in states}
        receipt_items = [{"purpose": code, "status": consents[code]["status"],
                          "legal_basis": catalogue.purposes[code].legal_basis, "notice_version": notices[code][0],
                          "notice_text_hash": notices[code][1]} for code in wishes if code in consents]
        receipt = build_receipt(self.ctx.policy, subject_id, receipt_items, catalogue.purposes, source, now)
        # The signed receipt is the subject's copy and is not stored: it proves itself with
        # the published key, and the ledger (which it is made from) is the controller's record.
        body = {"subject_id": subject_id, "consents": consents,
                "receipt": {**receipt, "signature": crypto.sign_jws(receipt)},
                "dropped_fields": sorted(set(values) - needed)}
        plan = Plan(subject_id, subject is None, snapshot, subject_row, events, state_rows, existing_states,
                    fields_insert, fields_update, body)
        pending = sorted(c for c, wants in wishes.items() if wants and states[c].status == "pending")
        if pending and "email" in values:
            self._add_confirmation(plan, dek, values["email"], pending, now)
        return plan

    def _add_confirmation(self, plan: Plan, dek: bytes, email: str, purposes: list[str], now: dt.datetime) -> None:
        days = self.ctx.double_opt_in_days
        token = confirm_links.issue(self.ctx.crypto, plan.subject_id, purposes, now, days)
        note = double_opt_in_note(plan.subject_id, email, token, purposes, days)  # written when sent
        plan.outbox.append(sealed_row(self.ctx.crypto, dek, plan.subject_id, note, now))


def still_current(tx: RawTransaction, plan: Plan) -> bool:
    """Whether the subject's consent state is still the one the plan was made from."""
    if plan.is_new:
        return True  # a concurrent first sign-up of the same e-mail fails on the unique index
    return frozenset((r[0], r[1]) for r in tx.all(SEQS_OF, {"sid": plan.subject_id})) == plan.snapshot


def prepare_rows(plan: Plan, now: dt.datetime, dialect: Any) -> list[Prepared]:
    """The plan's rows that do not depend on the ledger's head, converted for the database
    before the write lock is taken (the subject first: the others refer to it)."""
    return [prepare(INSERT_SUBJECT, [plan.subject_row], dialect) if plan.subject_row is not None
            else prepare(TOUCH_SUBJECT, [{"b_sid": plan.subject_id, "b_now": now}], dialect),
            prepare(INSERT_FIELD, plan.fields_insert, dialect),
            prepare(UPDATE_FIELD, plan.fields_update, dialect),
            prepare(INSERT_MAIL, plan.outbox, dialect)]


def write(tx: RawTransaction, plan: Plan, prepared: list[Prepared]) -> None:
    """Store a plan inside a :func:`privacy.storage.database.raw_write` transaction (SQLite's write lock
    is held for exactly these statements, so they run on the DBAPI cursor)."""
    for rows in prepared:
        tx.run(rows)
    inserts, updates = [], []
    for row in append_consent_events_raw(tx, plan.events):
        state = {**plan.states[row["purpose"]], "event_seq": row["seq"]}
        if row["purpose"] in plan.existing_states:
            updates.append({"b_sid": plan.subject_id, "b_purpose": row["purpose"],
                            **{f"v_{k}": v for k, v in state.items() if k not in ("subject_id", "purpose")}})
        else:
            inserts.append(state)
    if inserts:
        tx.executemany(INSERT_STATE, inserts)
    if updates:
        tx.executemany(UPDATE_STATE, updates)
