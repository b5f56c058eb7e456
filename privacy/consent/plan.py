"""The write path of a consent recording, split so the write lock is held briefly.

``current`` reads the subject's current state in a short read transaction; ``plan`` then
does, with no transaction open, all the work that needs no lock: transitions,
minimisation, field encryption, the signed receipt, the double opt-in link (a MAC: nothing
stored, :mod:`privacy.consent.confirm_links`) and the sealed note its mail is written from.
``write`` then runs inside the write transaction: it checks that the subject's state is
still the one planned from (optimistic concurrency; a changed state means plan again),
appends the ledger events (the only step that needs the chain head) and stores the rows
through the repositories (:mod:`privacy.storage.repositories`), converted beforehand.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from privacy.consent import confirm_links
from privacy.consent.mail import double_opt_in_note
from privacy.consent.receipts import build_receipt
from privacy.context import PrivacyContext, as_json_time
from privacy.errors import Conflict
from privacy.ids import new_id
from privacy.languages import DEFAULT_LANGUAGE
from privacy.ledger import append_consent_events
from privacy.mail.outbox import sealed_mail
from privacy.policy.catalogue import Catalogue
from privacy.policy.file import PurposeDef
from privacy.storage.repositories.consent_states import ConsentStateRecord, ConsentStateRepository
from privacy.storage.repositories.outbox import OutboxRepository, QueuedMail
from privacy.storage.repositories.subjects import NewSubject, SubjectRepository
from privacy.storage.statements import Prepared, Transaction

ACTIVE = ("granted", "pending")


def lapsed(state: ConsentStateRecord, purpose: PurposeDef | None, now: dt.datetime) -> bool:
    if purpose is None or not purpose.consent_valid_days or state.granted_at is None:
        return False
    return state.granted_at < now - dt.timedelta(days=purpose.consent_valid_days)


def state_view(state: ConsentStateRecord, purpose: PurposeDef | None, now: dt.datetime) -> dict[str, Any]:
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
    new_subject: NewSubject | None
    snapshot: frozenset[tuple[str, int]]
    events: list[dict[str, Any]]
    states: dict[str, ConsentStateRecord]      # purpose -> new state (event_seq filled at write)
    existing_states: set[str]
    sealed: dict[str, bytes]                   # field name -> ciphertext to store
    existing_fields: set[str]
    body: dict[str, Any]
    outbox: list[QueuedMail] = field(default_factory=list)


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

    def find_subject(self, reader: Transaction, values: dict[str, str], subject_id: str | None) -> Any:
        subjects = SubjectRepository(reader)
        if subject_id is not None:
            return subjects.keys_by_id(subject_id)
        subject = subjects.keys_or_suppression(self.blind_index(values["email"]))
        if subject is not None and subject.suppressed:
            raise Conflict("this person's data was erased; a new sign-up needs the erasure to be lifted",
                           {"subject.email": ["belongs to an erased subject"]}, code="subject_erased")
        return subject

    def current(self, reader: Transaction, subject: Any) -> tuple[dict[str, ConsentStateRecord], set[str]]:
        """A known subject's consent states and the names of its stored fields (none for a new one)."""
        if subject is None:
            return {}, set()
        return ConsentStateRepository(reader).of_subject(subject.id), SubjectRepository(reader).field_names(subject.id)

    def plan(self, subject: Any, known: tuple[dict[str, ConsentStateRecord], set[str]], source: dict[str, Any],
             values: dict[str, str], wishes: dict[str, bool], notices: dict[str, tuple[str | None, str | None]],
             catalogue: Catalogue, now: dt.datetime, language: str = DEFAULT_LANGUAGE) -> Plan:
        """Everything the recording will write, from what :meth:`current` read (``known``):
        no database access, so it runs after the read transaction has ended."""
        crypto = self.ctx.crypto
        states, existing_fields = dict(known[0]), known[1]
        new_subject = None
        if subject is None:
            subject_id = new_id()
            dek, wrapped = crypto.new_data_key(subject_id)
            new_subject = NewSubject(subject_id, self.blind_index(values["email"]), wrapped, crypto.master_key_id)
        else:
            subject_id = subject.id
            dek = crypto.data_key(subject)
        snapshot = frozenset((p, s.event_seq) for p, s in states.items())
        existing_states = set(states)
        events, changed = _changes(subject_id, states, json.dumps(source, sort_keys=True), wishes, notices,
                                   catalogue, now)
        states.update(changed)
        needed = {f for code, st in states.items() if st.status in ACTIVE and code in catalogue.purposes
                  for f in catalogue.purposes[code].fields}
        sealed = {name: crypto.encrypt_field(dek, subject_id, name, values[name]) for name in values.keys() & needed}
        consents = {code: state_view(states[code], catalogue.purposes[code], now) for code in wishes if code in states}
        receipt_items = [{"purpose": code, "status": consents[code]["status"],
                          "legal_basis": catalogue.purposes[code].legal_basis, "notice_version": notices[code][0],
                          "notice_text_hash": notices[code][1]} for code in wishes if code in consents]
        receipt = build_receipt(self.ctx.policy, subject_id, receipt_items, catalogue.purposes, source, now,
                                language)
        # The signed receipt is the subject's copy and is not stored: it proves itself with
        # the published key, and the ledger (which it is made from) is the controller's record.
        body = {"subject_id": subject_id, "consents": consents,
                "receipt": {**receipt, "signature": crypto.sign_jws(receipt)},
                "dropped_fields": sorted(set(values) - needed)}
        plan = Plan(subject_id, new_subject, snapshot, events, changed, existing_states, sealed, existing_fields, body)
        pending = sorted(c for c, wants in wishes.items() if wants and states[c].status == "pending")
        if pending and "email" in values:
            self._add_confirmation(plan, dek, values["email"], pending, now, language)
        return plan

    def _add_confirmation(self, plan: Plan, dek: bytes, email: str, purposes: list[str], now: dt.datetime,
                          language: str) -> None:
        days = self.ctx.double_opt_in_days
        token = confirm_links.issue(self.ctx.crypto, plan.subject_id, purposes, now, days)
        note = double_opt_in_note(plan.subject_id, email, token, purposes, days, language)  # written when sent
        plan.outbox.append(sealed_mail(self.ctx.crypto, dek, plan.subject_id, note, now))


def _changes(subject_id: str, states: dict[str, ConsentStateRecord], source_json: str, wishes: dict[str, bool],
             notices: dict[str, tuple[str | None, str | None]], catalogue: Catalogue, now: dt.datetime
             ) -> tuple[list[dict[str, Any]], dict[str, ConsentStateRecord]]:
    """The ledger events of a recording and the states they make, per purpose that changes."""
    events, changed = [], {}
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
                       "notice_version": version, "text_hash": digest, "source": source_json, "recorded_at": now})
        granted_at = now if status == "granted" else (current.granted_at if current else None)
        changed[code] = ConsentStateRecord(subject_id, code, status, version, now, granted_at)
    return events, changed


def still_current(tx: Transaction, plan: Plan) -> bool:
    """Whether the subject's consent state is still the one the plan was made from."""
    if plan.new_subject is not None:
        return True  # a concurrent first sign-up of the same e-mail fails on the unique index
    return ConsentStateRepository(tx).snapshot(plan.subject_id) == plan.snapshot


def prepare_rows(plan: Plan, now: dt.datetime, dialect: Any) -> list[Prepared]:
    """The plan's rows that do not depend on the ledger's head, converted for the database
    before the write lock is taken (the subject first: the others refer to it)."""
    subject = (SubjectRepository.prepare_new(plan.new_subject, now, dialect) if plan.new_subject is not None
               else SubjectRepository.prepare_touch(plan.subject_id, now, dialect))
    return [subject, *SubjectRepository.prepare_fields(plan.subject_id, plan.sealed, plan.existing_fields, now,
                                                       dialect),
            OutboxRepository.prepare(plan.outbox, dialect)]


def write(tx: Transaction, plan: Plan, prepared: list[Prepared]) -> None:
    """Store a plan inside a :meth:`privacy.storage.database.Database.raw_write` transaction
    (SQLite's write lock is held for exactly these statements, so they run on the DBAPI cursor)."""
    for rows in prepared:
        tx.run(rows)
    inserts: list[ConsentStateRecord] = []
    updates: list[ConsentStateRecord] = []
    for row in append_consent_events(tx, plan.events):
        state = plan.states[row["purpose"]]
        state.event_seq = row["seq"]
        (updates if state.purpose in plan.existing_states else inserts).append(state)
    states = ConsentStateRepository(tx)
    if inserts:
        states.insert(inserts)
    if updates:
        states.update(updates)
