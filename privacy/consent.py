"""ConsentService: recording, withdrawing, confirming and checking consent.

Every change is one ledger event per purpose, appended in the same transaction that
updates the current-state table, so reads are one indexed lookup and the ledger is the
proof. Minimisation happens here: only the fields a purpose the subject now agrees to
(or has a contract for) needs are encrypted and stored; the rest is reported back as
``dropped_fields`` and never written.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from privacy.context import PrivacyContext, as_json_time
from privacy.db import unit_of_work
from privacy.errors import Conflict, Gone, InvalidInput, NotFound
from privacy.fields import FieldValueError, normalise
from privacy.ledger import append_audit, append_consent_events, timestamp
from privacy.mailer import OutgoingMail
from privacy.models import Confirmation, ConsentEvent, ConsentState, IdempotencyRecord, Subject, SubjectField
from privacy.policy import PurposeDef
from privacy.purposes import Catalogue, load_catalogue
from privacy.receipts import build_receipt, sign_and_store

log = logging.getLogger(__name__)

ACTIVE = ("granted", "pending")
CHECK_CHUNK = 10_000
WRITE_ATTEMPTS = 3


@dataclass
class ConsentCommand:
    """A sign-up or preference change, as parsed from the request (shape only)."""

    purposes: dict[str, bool]
    source: dict[str, Any]
    subject: dict[str, Any] = field(default_factory=dict)
    subject_id: str | None = None
    notice_version: str | dict[str, str] | None = None
    gpc: bool = False

    def fingerprint(self) -> str:
        body = {"purposes": self.purposes, "source": self.source, "subject": self.subject,
                "subject_id": self.subject_id, "notice_version": self.notice_version, "gpc": self.gpc}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _check_query(by_email: bool, with_cutoff: bool) -> Any:
    """Who is allowed among a chunk of keys: one statement, built once, bound per call."""
    column = Subject.email_index if by_email else Subject.id
    conditions = [column.in_(bindparam("keys", expanding=True)), ConsentState.purpose == bindparam("purpose"),
                  ConsentState.status == "granted", Subject.restricted.is_(False)]
    if with_cutoff:
        conditions.append(ConsentState.granted_at >= bindparam("cutoff"))
    return select(column).join(ConsentState, ConsentState.subject_id == Subject.id).where(*conditions)


CHECK_QUERIES = {(e, c): _check_query(e, c) for e in (True, False) for c in (True, False)}


@dataclass
class State:
    """A purpose's current state for one subject (a row of ``consent_states``)."""

    status: str
    notice_version: str | None
    recorded_at: dt.datetime
    granted_at: dt.datetime | None
    event_seq: int


STATE_COLUMNS = (ConsentState.purpose, ConsentState.status, ConsentState.notice_version, ConsentState.recorded_at,
                 ConsentState.granted_at, ConsentState.event_seq)


def state_view(state: State | ConsentState, purpose: PurposeDef | None, now: dt.datetime) -> dict[str, Any]:
    """A purpose's state as clients read it; a lapsed consent shows as ``expired``."""
    status = state.status
    if status == "granted" and lapsed(state, purpose, now):
        status = "expired"
    return {"status": status, "notice_version": state.notice_version, "recorded_at": as_json_time(state.recorded_at)}


def lapsed(state: State | ConsentState, purpose: PurposeDef | None, now: dt.datetime) -> bool:
    if purpose is None or not purpose.consent_valid_days or state.granted_at is None:
        return False
    return state.granted_at < now - dt.timedelta(days=purpose.consent_valid_days)


def _transition(current: str | None, wants: bool, doi: bool, notice_changed: bool) -> tuple[str, str] | None:
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


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError):
        return False


def _age_on(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class ConsentService:
    def __init__(self, session: Session, ctx: PrivacyContext) -> None:
        self.session = session
        self.ctx = ctx

    # --- recording ----------------------------------------------------------------

    def record(self, cmd: ConsentCommand, now: dt.datetime, idempotency: tuple[str, str] | None = None
               ) -> tuple[int, dict[str, Any]]:
        """Record a sign-up or preference change; return (HTTP status, body).

        ``idempotency`` is (api key id, Idempotency-Key): a repeat with the same body gets
        the first answer again, a repeat with another body is a conflict.
        """
        try:
            catalogue, values, wishes, notices = self._prepare(cmd, load_catalogue(self.session), now)
        except InvalidInput:
            # Another process may have just added the purpose or notice version: look again.
            catalogue, values, wishes, notices = self._prepare(cmd, load_catalogue(self.session, fresh=True), now)
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with unit_of_work() as session:
                    if idempotency:
                        replay = self._replay(session, idempotency, cmd.fingerprint())
                        if replay is not None:
                            return replay
                    body, mails = self._apply(session, cmd, values, wishes, notices, catalogue, now)
                    if idempotency:
                        session.add(IdempotencyRecord(api_key_id=idempotency[0], key=idempotency[1],
                                                      request_hash=cmd.fingerprint(), status_code=201,
                                                      response=json.dumps(body), created_at=now))
                break
            except IntegrityError:
                # A concurrent first sign-up of the same e-mail, or the same Idempotency-Key:
                # the other transaction won; run again and see its result.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        self._send(mails)
        log.info("consent recorded subject=%s purposes=%s", body["subject_id"], ",".join(sorted(body["consents"])))
        return 201, body

    def _prepare(self, cmd: ConsentCommand, catalogue: Catalogue, now: dt.datetime) -> tuple[
            Catalogue, dict[str, str], dict[str, bool], dict[str, tuple[str | None, str | None]]]:
        values = self._validate(cmd, catalogue, now)
        wishes = self._wishes(cmd, catalogue)
        return catalogue, values, wishes, self._notices(cmd, wishes, catalogue)

    def _replay(self, session: Session, idempotency: tuple[str, str], fingerprint: str
                ) -> tuple[int, dict[str, Any]] | None:
        rec = session.get(IdempotencyRecord, idempotency)
        if rec is None:
            return None
        if rec.request_hash != fingerprint:
            raise Conflict("Idempotency-Key was already used with a different request body",
                           {"Idempotency-Key": ["reused with a different body"]}, code="idempotency_key_reused")
        return rec.status_code, json.loads(rec.response)

    def _validate(self, cmd: ConsentCommand, catalogue: Catalogue, now: dt.datetime) -> dict[str, str]:
        policy = self.ctx.policy
        problems: dict[str, list[str]] = {}
        for code in cmd.purposes:
            if code not in catalogue.purposes:
                problems[f"purposes.{code}"] = [f"'{code}' is not a declared purpose"]
        values: dict[str, str] = {}
        for name, raw in cmd.subject.items():
            spec = policy.fields.get(name)
            if spec is None:
                problems[f"subject.{name}"] = [f"'{name}' is not in the fields catalogue"]
                continue
            try:
                values[name] = normalise(spec.type, raw, spec.max_length)
            except FieldValueError as exc:
                problems[f"subject.{name}"] = [str(exc)]
        if cmd.subject_id is None and "email" not in cmd.subject:
            problems["subject.email"] = ["is required (or give subject_id)"]
        if problems:
            raise InvalidInput.fields(problems)
        return values

    def _wishes(self, cmd: ConsentCommand, catalogue: Catalogue) -> dict[str, bool]:
        wishes = dict(cmd.purposes)
        if cmd.gpc:
            for p in catalogue.purposes.values():
                if p.gpc_opt_out and p.needs_consent:
                    wishes[p.code] = False
        return wishes

    def _notices(self, cmd: ConsentCommand, wishes: dict[str, bool], catalogue: Catalogue
                 ) -> dict[str, tuple[str | None, str | None]]:
        """(notice version, text hash) per purpose; the version must be one the purpose had."""
        out: dict[str, tuple[str | None, str | None]] = {}
        given = cmd.notice_version
        problems: dict[str, list[str]] = {}
        for code in wishes:
            purpose = catalogue.purposes[code]
            if isinstance(given, dict):
                version, path = given.get(code), f"notice_version.{code}"
            else:
                version, path = given, "notice_version"
            if version is None and code not in cmd.purposes:
                version = (purpose.notice or {}).get("version")  # declined by a GPC signal alone
            known = catalogue.notices.get(code)
            if known:
                if version is None:
                    problems[path] = [f"is required: name the notice version shown for '{code}'"]
                elif version not in known:
                    problems[path] = [f"'{version}' is not a notice version of '{code}' "
                                      f"(known: {', '.join(sorted(known))})"]
                out[code] = (version, known.get(version or ""))
            else:
                out[code] = (version, None)
        if problems:
            raise InvalidInput.fields(problems)
        return out

    def _check_age(self, values: dict[str, str], wishes: dict[str, bool], catalogue: Catalogue,
                   now: dt.datetime) -> None:
        if "birth_date" not in values:
            return
        if not any(w and catalogue.purposes[c].needs_consent for c, w in wishes.items()):
            return
        country = values.get("country")
        limit = self.ctx.policy.age_of_consent_for(country)
        age = _age_on(dt.date.fromisoformat(values["birth_date"]), now.date())
        if age < limit:
            message = f"is below the digital age of consent ({limit}) of {country or 'the default country'}"
            raise InvalidInput("subject.birth_date: " + message, {"subject.birth_date": [message]},
                               code="below_age_of_consent")

    def _apply(self, session: Session, cmd: ConsentCommand, values: dict[str, str], wishes: dict[str, bool],
               notices: dict[str, tuple[str | None, str | None]], catalogue: Catalogue, now: dt.datetime
               ) -> tuple[dict[str, Any], list[OutgoingMail]]:
        """The write path of a sign-up, in Core statements (it is the hottest path we have)."""
        crypto = self.ctx.crypto
        self._check_age(values, wishes, catalogue, now)
        subject = self._find_subject(session, cmd, values)
        states: dict[str, State] = {}
        if subject is None:
            subject_id = str(uuid.uuid4())
            dek, wrapped = crypto.new_data_key(subject_id)
            session.execute(insert(Subject).values(
                id=subject_id, email_index=crypto.blind_index(values["email"]), wrapped_key=wrapped,
                master_key_id=crypto.master_key_id, restricted=False, created_at=now, updated_at=now,
                last_activity_at=now))
            existing_fields: set[str] = set()
        else:
            subject_id = subject.id
            dek = crypto.data_key(subject)
            states = {r.purpose: State(r.status, r.notice_version, r.recorded_at, r.granted_at, r.event_seq)
                      for r in session.execute(select(*STATE_COLUMNS).where(ConsentState.subject_id == subject_id))}
            existing_fields = set(session.scalars(
                select(SubjectField.name).where(SubjectField.subject_id == subject_id)))
            session.execute(update(Subject).where(Subject.id == subject_id).values(updated_at=now,
                                                                                  last_activity_at=now))
        source = json.dumps(cmd.source, sort_keys=True)
        events = []
        for code, wants in wishes.items():
            purpose = catalogue.purposes[code]
            current = states.get(code)
            version, digest = notices[code]
            cur_status = current.status if current else None
            if current is not None and cur_status == "granted" and lapsed(current, purpose, now):
                cur_status = "expired"
            step = _transition(cur_status, wants, purpose.double_opt_in,
                               current is not None and version is not None and current.notice_version != version)
            if step is not None:
                events.append({"subject_id": subject_id, "purpose": code, "action": step[0], "status": step[1],
                               "notice_version": version, "text_hash": digest, "source": source,
                               "recorded_at": now})
        new_states: list[dict[str, Any]] = []
        changed_states: list[dict[str, Any]] = []
        for row in append_consent_events(session, events):
            code = row["purpose"]
            before = states.get(code)
            granted_at = now if row["status"] == "granted" else (before.granted_at if before else None)
            states[code] = State(row["status"], row["notice_version"], now, granted_at, row["seq"])
            values_row = {"subject_id": subject_id, "purpose": code, "status": row["status"],
                          "notice_version": row["notice_version"], "recorded_at": now, "granted_at": granted_at,
                          "event_seq": row["seq"]}
            (changed_states if before else new_states).append(values_row)
        if new_states:
            session.execute(insert(ConsentState), new_states)
        for row in changed_states:
            session.execute(update(ConsentState).where(
                ConsentState.subject_id == subject_id, ConsentState.purpose == row["purpose"]).values(**row))
        needed = {f for code, st in states.items() if st.status in ACTIVE and code in catalogue.purposes
                  for f in catalogue.purposes[code].fields}
        keep = sorted(values.keys() & needed)
        sealed = {name: crypto.encrypt_field(dek, subject_id, name, values[name]) for name in keep}
        fresh = [{"subject_id": subject_id, "name": n, "ciphertext": c, "updated_at": now}
                 for n, c in sealed.items() if n not in existing_fields]
        if fresh:
            session.execute(insert(SubjectField), fresh)
        for name in existing_fields & sealed.keys():
            session.execute(update(SubjectField).where(SubjectField.subject_id == subject_id,
                                                       SubjectField.name == name)
                            .values(ciphertext=sealed[name], updated_at=now))
        mails = []
        pending = sorted(c for c, wants in wishes.items() if wants and states[c].status == "pending")
        if pending and "email" in values:
            mails.append(self._doi_mail(session, subject_id, values["email"], pending, catalogue, now))
        consents = {code: state_view(states[code], catalogue.purposes[code], now) for code in wishes if code in states}
        receipt_items = [{"purpose": code, "status": consents[code]["status"], "legal_basis":
                          catalogue.purposes[code].legal_basis, "notice_version": notices[code][0],
                          "notice_text_hash": notices[code][1]} for code in wishes if code in consents]
        receipt = sign_and_store(session, crypto, build_receipt(
            self.ctx.policy, subject_id, receipt_items, catalogue.purposes, cmd.source, now), now)
        body = {"subject_id": subject_id, "consents": consents, "receipt": receipt,
                "dropped_fields": sorted(set(values) - needed)}
        return body, mails

    def _find_subject(self, session: Session, cmd: ConsentCommand, values: dict[str, str]) -> Any:
        query = select(Subject.id, Subject.email_index, Subject.wrapped_key, Subject.master_key_id)
        if cmd.subject_id is not None:
            subject = session.execute(query.where(Subject.id == cmd.subject_id)).first()
            if subject is None or subject.wrapped_key is None:
                raise NotFound(f"subject '{cmd.subject_id}' not found", {"subject_id": ["not found"]})
            if "email" in values and subject.email_index != self.ctx.crypto.blind_index(values["email"]):
                raise InvalidInput.field("subject.email", "does not belong to subject_id; e-mail changes "
                                         "go through a rectification request")
            return subject
        return session.execute(query.where(Subject.email_index == self.ctx.crypto.blind_index(values["email"]))
                               ).first()

    # --- mail links -----------------------------------------------------------------

    def withdraw_url(self, subject_id: str, purpose: str) -> str:
        token = self.ctx.crypto.link_token("withdraw", subject_id, purpose)
        query = urlencode({"subject": subject_id, "purpose": purpose, "token": token})
        return f"{self.ctx.public_url}/v1/consents/withdraw?{query}"

    def _doi_mail(self, session: Session, subject_id: str, email: str, purposes: list[str],
                  catalogue: Catalogue, now: dt.datetime) -> OutgoingMail:
        token = secrets.token_urlsafe(32)
        session.execute(insert(Confirmation).values(
            token_hash=hashlib.sha256(token.encode()).hexdigest(), subject_id=subject_id,
            purposes=json.dumps(purposes), created_at=now,
            expires_at=now + dt.timedelta(days=self.ctx.double_opt_in_days)))
        confirm = f"{self.ctx.public_url}/v1/consents/confirm/{token}"
        names = [catalogue.purposes[p].name.get("en", p) for p in purposes]
        withdraw = [self.withdraw_url(subject_id, p) for p in purposes]
        lines = ["Please confirm that you want to receive:", *[f"  - {n}" for n in names], "",
                 f"Confirm here: {confirm}", "",
                 f"The link is valid for {self.ctx.double_opt_in_days} days. If you did not ask for this, "
                 "ignore this e-mail and nothing will be sent to you.", "",
                 "To withdraw at any time:", *[f"  {u}" for u in withdraw]]
        return OutgoingMail(to=email, subject="Please confirm your subscription", text="\n".join(lines),
                            headers={"List-Unsubscribe": f"<{withdraw[0]}>",
                                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})

    def _send(self, mails: Sequence[OutgoingMail]) -> None:
        for mail in mails:
            try:
                self.ctx.mailer.send(mail)
            except Exception:  # the consent is recorded; a lost mail must not undo it
                log.exception("could not send a consent mail")

    def confirm(self, token: str, now: dt.datetime, source: dict[str, Any]) -> dict[str, Any]:
        """Follow a double opt-in link (POST only): pending purposes become granted."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with unit_of_work() as session:
            conf = session.get(Confirmation, digest)
            if conf is None:
                raise NotFound("unknown confirmation link", {"token": ["unknown"]})
            if conf.used_at is not None:
                raise Gone("this confirmation link was already used", {"token": ["already used"]}, code="token_used")
            if conf.expires_at < now:
                raise Gone("this confirmation link has expired", {"token": ["expired"]}, code="token_expired")
            conf.used_at = now
            purposes = json.loads(conf.purposes)
            states = {s.purpose: s for s in session.scalars(select(ConsentState).where(
                ConsentState.subject_id == conf.subject_id, ConsentState.purpose.in_(purposes)))}
            pending = [states[p] for p in purposes if p in states and states[p].status == "pending"]
            rows = append_consent_events(session, [
                {"subject_id": conf.subject_id, "purpose": s.purpose, "action": "confirmed", "status": "granted",
                 "notice_version": s.notice_version, "text_hash": self._text_hash_of(session, s),
                 "source": json.dumps(source, sort_keys=True), "recorded_at": now} for s in pending])
            for state, row in zip(pending, rows, strict=True):
                state.status, state.recorded_at, state.granted_at, state.event_seq = "granted", now, now, row["seq"]
            return {"subject_id": conf.subject_id, "confirmed": [s.purpose for s in pending]}

    @staticmethod
    def _text_hash_of(session: Session, state: ConsentState) -> str | None:
        return session.scalars(select(ConsentEvent.text_hash).where(
            ConsentEvent.seq == state.event_seq)).one_or_none()

    def withdraw_by_link(self, subject_id: str, purpose: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """One-click withdrawal from a mailed link (RFC 8058): as easy as giving."""
        if not self.ctx.crypto.check_link_token(token, "withdraw", subject_id, purpose):
            raise NotFound("unknown withdraw link", {"token": ["does not match"]})
        with unit_of_work() as session:
            state = session.get(ConsentState, (subject_id, purpose))
            if state is None or state.status not in ACTIVE:
                return {"subject_id": subject_id, "purpose": purpose, "status": state.status if state else "none"}
            (row,) = append_consent_events(session, [
                {"subject_id": subject_id, "purpose": purpose, "action": "withdrawn", "status": "withdrawn",
                 "notice_version": state.notice_version, "text_hash": self._text_hash_of(session, state),
                 "source": json.dumps({"channel": "email", "form": "withdraw-link"}), "recorded_at": now}])
            state.status, state.recorded_at, state.event_seq = "withdrawn", now, row["seq"]
            return {"subject_id": subject_id, "purpose": purpose, "status": "withdrawn"}

    # --- reading --------------------------------------------------------------------

    def _subject(self, subject_id: str) -> Subject:
        if not is_uuid(subject_id):
            raise NotFound(f"subject '{subject_id[:64]}' not found")
        subject = self.session.get(Subject, subject_id)
        if subject is None:
            raise NotFound(f"subject '{subject_id}' not found")
        return subject

    def states(self, subject_id: str, now: dt.datetime) -> dict[str, Any]:
        self._subject(subject_id)
        catalogue = load_catalogue(self.session)
        rows = self.session.scalars(select(ConsentState).where(ConsentState.subject_id == subject_id))
        return {"subject_id": subject_id,
                "consents": {s.purpose: state_view(s, catalogue.purposes.get(s.purpose), now) for s in rows}}

    def history(self, subject_id: str) -> dict[str, Any]:
        if not is_uuid(subject_id):
            raise NotFound(f"subject '{subject_id[:64]}' not found")
        events = list(self.session.scalars(
            select(ConsentEvent).where(ConsentEvent.subject_id == subject_id).order_by(ConsentEvent.seq)))
        if not events:
            self._subject(subject_id)
        return {"subject_id": subject_id, "events": [
            {"purpose": e.purpose, "status": e.status, "event": e.action, "notice_version": e.notice_version,
             "text_hash": e.text_hash, "recorded_at": timestamp(e.recorded_at), "source": json.loads(e.source),
             "hash": e.hash} for e in events]}

    def check(self, purpose_code: str, now: dt.datetime, emails: list[str] | None = None,
              subject_ids: list[str] | None = None) -> dict[str, Any]:
        """Who may be contacted for a purpose: set-based, in chunks, never a query per input."""
        purpose = load_catalogue(self.session).purposes.get(purpose_code)
        if purpose is None:
            purpose = load_catalogue(self.session, fresh=True).purposes.get(purpose_code)
        if purpose is None:
            raise InvalidInput.field("purpose", f"'{purpose_code}' is not a declared purpose")
        inputs = emails if emails is not None else subject_ids or []
        if emails is not None:
            index = self.ctx.crypto.blind_indexer()
            keys: list[Any] = [index(e) for e in emails]
        else:
            keys = list(inputs)
        query = CHECK_QUERIES[(emails is not None, bool(purpose.consent_valid_days))]
        params: dict[str, Any] = {"purpose": purpose_code}
        if purpose.consent_valid_days:
            params["cutoff"] = now - dt.timedelta(days=purpose.consent_valid_days)
        allowed_keys: set[Any] = set()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), CHECK_CHUNK):
            params["keys"] = unique[start:start + CHECK_CHUNK]
            allowed_keys.update(self.session.scalars(query, params))
        allowed: list[str] = []
        denied: list[str] = []
        for given, key in zip(inputs, keys, strict=True):
            (allowed if key in allowed_keys else denied).append(given)
        return {"purpose": purpose_code, "allowed": allowed, "denied": denied}

    def find_by_email(self, email: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """An officer looks a person up: decrypted fields, and an audit entry saying so."""
        try:
            normal = normalise("email", email)
        except FieldValueError as exc:
            raise InvalidInput.field("email", str(exc)) from exc
        with unit_of_work() as session:
            subject = session.scalars(
                select(Subject).where(Subject.email_index == self.ctx.crypto.blind_index(normal))).one_or_none()
            if subject is None or subject.wrapped_key is None:
                raise NotFound("no subject with that e-mail")
            dek = self.ctx.crypto.data_key(subject)
            fields = {f.name: self.ctx.crypto.decrypt_field(dek, subject.id, f.name, f.ciphertext)
                      for f in session.scalars(select(SubjectField).where(SubjectField.subject_id == subject.id))}
            append_audit(session, actor, "subject.lookup", now, target=subject.id, details={"by": "email"})
            return {"id": subject.id, "fields": fields, "created_at": as_json_time(subject.created_at),
                    "restricted": subject.restricted}

    # --- scheduled ------------------------------------------------------------------

    def expire(self, now: dt.datetime, batch_size: int = 1000) -> int:
        """Append an ``expired`` event for every consent past its validity; returns a count."""
        catalogue = load_catalogue(self.session)
        total = 0
        for purpose in catalogue.purposes.values():
            if not purpose.consent_valid_days:
                continue
            cutoff = now - dt.timedelta(days=purpose.consent_valid_days)
            while True:
                with unit_of_work() as session:
                    states = list(session.scalars(select(ConsentState).where(
                        ConsentState.purpose == purpose.code, ConsentState.status == "granted",
                        ConsentState.granted_at < cutoff).limit(batch_size)))
                    rows = append_consent_events(session, [
                        {"subject_id": s.subject_id, "purpose": s.purpose, "action": "expired", "status": "expired",
                         "notice_version": s.notice_version, "text_hash": None,
                         "source": json.dumps({"channel": "scheduler", "form": "consent-expiry"}),
                         "recorded_at": now} for s in states])
                    for state, row in zip(states, rows, strict=True):
                        state.status, state.recorded_at, state.event_seq = "expired", now, row["seq"]
                total += len(states)
                if len(states) < batch_size:
                    break
        return total
