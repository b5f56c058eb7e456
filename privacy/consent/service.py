"""ConsentService: recording, withdrawing, confirming and checking consent.

Every change is one ledger event per purpose, appended in the same transaction that
updates the current-state table, so reads are one indexed lookup and the ledger is the
proof. Minimisation happens here: only the fields a purpose the subject now agrees to
(or has a contract for) needs are encrypted and stored; the rest is reported back as
``dropped_fields`` and never written.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from privacy.consent import confirm_links
from privacy.consent.plan import ACTIVE, Planner, prepare_rows, state_view, still_current, write
from privacy.context import PrivacyContext, as_json_time
from privacy.crypto.keys import Crypto, token_hash
from privacy.errors import Conflict, Gone, InvalidInput, NotFound
from privacy.ledger import append_audit, append_consent_events, timestamp
from privacy.policy.catalogue import Catalogue, cached_catalogue, catalogue_as_of, load_catalogue, read_stamp
from privacy.policy.fields import FieldValueError, normalise
from privacy.storage.database import in_transaction
from privacy.storage.models import Confirmation, ConsentEvent, ConsentState, IdempotencyRecord, Subject, SubjectField
from privacy.storage.statements import RawTransaction

log = logging.getLogger(__name__)

_IK = IdempotencyRecord.__table__
IDEMPOTENCY_OF = select(_IK.c.request_hash, _IK.c.status_code, _IK.c.response).where(
    _IK.c.api_key_id == bindparam("kid"), _IK.c.key == bindparam("key"))
INSERT_IDEMPOTENCY = insert(_IK)
CHECK_CHUNK = 10_000
WRITE_ATTEMPTS = 3
IDEMPOTENCY_TTL = dt.timedelta(hours=24)


@dataclass
class ConsentCommand:
    """A sign-up or preference change, as parsed from the request (shape only)."""

    purposes: dict[str, bool]
    source: dict[str, Any]
    subject: dict[str, Any] = field(default_factory=dict)
    subject_id: str | None = None
    notice_version: str | dict[str, str] | None = None
    gpc: bool = False

    def fingerprint(self, crypto: Crypto) -> str:
        """A keyed MAC of the request (it holds personal data, so no plain hash is stored)."""
        body = {"purposes": self.purposes, "source": self.source, "subject": self.subject,
                "subject_id": self.subject_id, "notice_version": self.notice_version, "gpc": self.gpc}
        return crypto.link_token("idempotency", json.dumps(body, sort_keys=True, default=str))


def allowed_among(conn: Any, by_email: bool, keys: list[Any], purpose: str, cutoff: dt.datetime | None
                  ) -> set[Any]:
    """The allowed keys among ``keys`` (blind indexes or subject ids), in driver-level SQL.

    SQLAlchemy compiles an expanding IN parameter by parameter, which costs more than the
    query itself at 100,000 inputs. PostgreSQL takes the keys as one array (``= ANY``);
    SQLite takes chunks of ``CHECK_CHUNK`` placeholders (its variable limit is 32,766) and
    a CROSS JOIN, which pins the join order to "look each key up in subjects first": from
    about 100 keys on, its planner otherwise walks every granted state of the purpose.
    """
    column = "email_index" if by_email else "id"
    granted_at = ConsentState.__table__.c.granted_at.type.bind_processor(conn.dialect)
    when = granted_at(cutoff) if (granted_at and cutoff is not None) else cutoff
    base = ("SELECT s.{col} FROM subjects s {join} consent_states c ON c.subject_id = s.id "
            "WHERE c.purpose = {p} AND c.status = 'granted' AND s.restricted = {f}{cut} AND s.{col} {keys}")
    found: set[Any] = set()
    if conn.dialect.name == "postgresql":
        sql = base.format(col=column, join="JOIN", p="%(purpose)s", f="false", keys="= ANY(%(keys)s)",
                          cut=" AND c.granted_at >= %(cutoff)s" if cutoff is not None else "")
        rows = conn.exec_driver_sql(sql, {"purpose": purpose, "keys": keys, "cutoff": when}).cursor.fetchall()
        found.update(bytes(r[0]) if by_email else r[0] for r in rows)
        return found
    for start in range(0, len(keys), CHECK_CHUNK):
        chunk = keys[start:start + CHECK_CHUNK]
        sql = base.format(col=column, join="CROSS JOIN", p="?", f="0", keys=f"IN ({','.join('?' * len(chunk))})",
                          cut=" AND c.granted_at >= ?" if cutoff is not None else "")
        params = (purpose, *([when] if cutoff is not None else []), *chunk)
        found.update(r[0] for r in conn.exec_driver_sql(sql, params).cursor.fetchall())
    return found


class _Stale(Exception):
    """The subject's state moved between planning and writing."""


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError):
        return False


def _link_used() -> Gone:
    return Gone("this confirmation link was already used", {"token": ["already used"]}, code="token_used")


def _age_on(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class ConsentService:
    def __init__(self, ctx: PrivacyContext) -> None:
        self.database = ctx.database
        self.session = ctx.database.session
        self.ctx = ctx

    # --- recording ----------------------------------------------------------------

    def record(self, cmd: ConsentCommand, now: dt.datetime, idempotency: tuple[str, str] | None = None
               ) -> tuple[int, dict[str, Any]]:
        """Record a sign-up or preference change; return (HTTP status, body).

        ``idempotency`` is (api key id, Idempotency-Key): a repeat with the same body gets
        the first answer again, a repeat with another body is a conflict.
        """
        try:
            catalogue, values, wishes, notices = self._prepare(cmd, cached_catalogue(self.database), now)
        except InvalidInput:
            # Another process may have just added the purpose or notice version: look again.
            catalogue, values, wishes, notices = self._prepare(cmd, load_catalogue(self.database), now)
        planner = Planner(self.ctx)
        fingerprint = cmd.fingerprint(self.ctx.crypto) if idempotency else ""
        database = self.database
        dialect = database.dialect
        integrity_errors = (IntegrityError, dialect.loaded_dbapi.IntegrityError)
        with database.raw_connection() as conn:  # one pool checkout for the read and the write
            for attempt in range(WRITE_ATTEMPTS):
                if in_transaction(self.session):
                    self.session.rollback()  # (a catalogue look-up) no snapshot is held while writing
                with database.raw_read(conn) as reader:
                    stamp = read_stamp(reader.cursor)
                    subject = planner.find_subject(reader, values, cmd.subject_id)
                    self._check_subject(subject, cmd, values)
                    known = planner.current(reader, subject)
                if stamp != catalogue.stamp:  # a purpose changed since this process last read them
                    catalogue, values, wishes, notices = self._prepare(
                        cmd, catalogue_as_of(database, stamp), now)
                    self.session.rollback()
                # No snapshot is held while planning (signing and sealing take about 0.2 ms):
                # a SQLite reader pins the WAL frames after its snapshot, which a checkpoint
                # cannot copy while the reader lasts.
                self._check_age(values, wishes, catalogue, now)
                plan = planner.plan(subject, known, cmd.source, values, wishes, notices, catalogue, now)
                rows = prepare_rows(plan, now, dialect)
                try:
                    with database.raw_write(conn) as tx:
                        if idempotency:
                            replay = self._replay(tx, idempotency, fingerprint)
                            if replay is not None:
                                return replay
                        if not still_current(tx, plan):
                            raise _Stale
                        write(tx, plan, rows)
                        if idempotency:
                            tx.execute(INSERT_IDEMPOTENCY, {
                                "api_key_id": idempotency[0], "key": idempotency[1], "request_hash": fingerprint,
                                "status_code": 201, "response": json.dumps(plan.body), "created_at": now})
                    break
                except (*integrity_errors, _Stale):
                    # Another request changed this subject (or used the same Idempotency-Key)
                    # between planning and writing: plan again from what it left.
                    if attempt == WRITE_ATTEMPTS - 1:
                        raise Conflict("the subject changed concurrently; send the request again") from None
        log.info("consent recorded subject=%s purposes=%s", plan.subject_id, ",".join(sorted(plan.body["consents"])))
        return 201, plan.body

    def _prepare(self, cmd: ConsentCommand, catalogue: Catalogue, now: dt.datetime) -> tuple[
            Catalogue, dict[str, str], dict[str, bool], dict[str, tuple[str | None, str | None]]]:
        values = self._validate(cmd, catalogue, now)
        wishes = self._wishes(cmd, catalogue)
        return catalogue, values, wishes, self._notices(cmd, wishes, catalogue)

    def _replay(self, tx: RawTransaction, idempotency: tuple[str, str], fingerprint: str
                ) -> tuple[int, dict[str, Any]] | None:
        rec = tx.first(IDEMPOTENCY_OF, {"kid": idempotency[0], "key": idempotency[1]})
        if rec is None:
            return None
        request_hash, status_code, response = rec
        if request_hash != fingerprint:
            raise Conflict("Idempotency-Key was already used with a different request body",
                           {"Idempotency-Key": ["reused with a different body"]}, code="idempotency_key_reused")
        return int(status_code), json.loads(response)

    def _validate(self, cmd: ConsentCommand, catalogue: Catalogue, now: dt.datetime) -> dict[str, str]:
        policy = self.ctx.policy
        problems: dict[str, list[str]] = {}
        for code in cmd.purposes:
            if code not in catalogue.purposes:
                problems[f"purposes.{code}"] = [f"'{code}' is not a declared purpose"]
        values, field_problems = policy.normalise_values(cmd.subject, "subject")
        problems.update(field_problems)
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

    def _check_subject(self, subject: Any, cmd: ConsentCommand, values: dict[str, str]) -> None:
        if cmd.subject_id is None:
            if subject is not None and subject.wrapped_key is None:
                # Erased (crypto-shredded): a new sign-up must not quietly bring the person back.
                raise Conflict("this person's data was erased; a new sign-up needs the erasure to be lifted",
                               {"subject.email": ["belongs to an erased subject"]}, code="subject_erased")
            return
        if subject is None or subject.wrapped_key is None:
            raise NotFound(f"subject '{cmd.subject_id}' not found", {"subject_id": ["not found"]})
        if "email" in values and subject.email_index != self.ctx.crypto.blind_index(values["email"]):
            raise InvalidInput.field("subject.email", "does not belong to subject_id; e-mail changes "
                                     "go through a rectification request")

    def confirm(self, token: str, now: dt.datetime) -> dict[str, Any]:
        """Follow a double opt-in link (POST only): pending purposes become granted.

        The link says what it confirms under a MAC (:mod:`privacy.consent.confirm_links`); using it
        stores its hash, so that it confirms once. A link of the former kind (a random
        token stored at sign-up) is looked up instead.
        """
        link = confirm_links.read(self.ctx.crypto, token)
        if link is None and not confirm_links.is_legacy(token):
            raise NotFound("unknown confirmation link", {"token": ["unknown"]})
        digest = token_hash(token)
        with self.database.unit_of_work() as session:
            conf = session.get(Confirmation, digest)
            if conf is None and link is not None:
                subject = session.get(Subject, link.subject_id)
                if subject is not None and subject.wrapped_key is not None:  # else erased since: unknown
                    conf = Confirmation(token_hash=digest, subject_id=link.subject_id,
                                        purposes=json.dumps(link.purposes), created_at=link.issued_at,
                                        expires_at=link.expires_at)
                    session.add(conf)
            if conf is None:
                raise NotFound("unknown confirmation link", {"token": ["unknown"]})
            if conf.used_at is not None:
                raise _link_used()
            if conf.expires_at < now:
                raise Gone("this confirmation link has expired", {"token": ["expired"]}, code="token_expired")
            conf.used_at = now
            try:
                session.flush()  # two clicks at once: the second one's row is refused here
            except IntegrityError:
                raise _link_used() from None
            purposes = json.loads(conf.purposes)
            states = {s.purpose: s for s in session.scalars(select(ConsentState).where(
                ConsentState.subject_id == conf.subject_id, ConsentState.purpose.in_(purposes)))}
            pending = [states[p] for p in purposes if p in states and states[p].status == "pending"]
            self._move(session, pending, "confirmed", "granted", {"channel": "email", "form": "double-opt-in"}, now)
            return {"subject_id": conf.subject_id, "confirmed": [s.purpose for s in pending]}

    def _move(self, session: Session, states: list[ConsentState], action: str, status: str,
              source: dict[str, Any], now: dt.datetime) -> None:
        """Append one ledger event per state and move the states along, in one go."""
        catalogue = load_catalogue(self.database)
        rows = append_consent_events(session, [
            {"subject_id": s.subject_id, "purpose": s.purpose, "action": action, "status": status,
             "notice_version": s.notice_version, "recorded_at": now, "source": json.dumps(source, sort_keys=True),
             "text_hash": catalogue.notice_hash(s.purpose, s.notice_version) if s.notice_version else None}
            for s in states])
        for state, row in zip(states, rows, strict=True):
            state.status, state.recorded_at, state.event_seq = status, now, row["seq"]
            if status == "granted":
                state.granted_at = now

    def withdraw_for(self, session: Session, subject_id: str, purposes: list[str] | None, source: dict[str, Any],
                     now: dt.datetime) -> list[str]:
        """Withdraw the subject's active consents for ``purposes`` (all with None) inside the
        caller's transaction, as objections and erasures do; returns the purposes withdrawn."""
        query = select(ConsentState).where(ConsentState.subject_id == subject_id,
                                           ConsentState.status.in_(sorted(ACTIVE)))
        if purposes is not None:
            query = query.where(ConsentState.purpose.in_(purposes))
        states = list(session.scalars(query.order_by(ConsentState.purpose)))
        if states:
            self._move(session, states, "withdrawn", "withdrawn", source, now)
        return [s.purpose for s in states]

    def withdraw_by_link(self, subject_id: str, purpose: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """One-click withdrawal from a mailed link (RFC 8058): as easy as giving."""
        if not self.ctx.crypto.check_link_token(token, "withdraw", subject_id, purpose):
            raise NotFound("unknown withdraw link", {"token": ["does not match"]})
        with self.database.unit_of_work() as session:
            state = session.get(ConsentState, (subject_id, purpose))
            if state is None or state.status not in ACTIVE:
                return {"subject_id": subject_id, "purpose": purpose, "status": state.status if state else "none"}
            self._move(session, [state], "withdrawn", "withdrawn", {"channel": "email", "form": "withdraw-link"}, now)
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
        catalogue = load_catalogue(self.database)
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
        purpose = load_catalogue(self.database).purposes.get(purpose_code)
        if purpose is None:
            raise InvalidInput.field("purpose", f"'{purpose_code}' is not a declared purpose")
        inputs = emails if emails is not None else subject_ids or []
        if emails is not None:
            index = self.ctx.crypto.blind_indexer()
            keys: list[Any] = [index(e) for e in emails]
        else:
            keys = list(inputs)
        cutoff = now - dt.timedelta(days=purpose.consent_valid_days) if purpose.consent_valid_days else None
        unique = list(dict.fromkeys(keys))
        allowed_keys = allowed_among(self.session.connection(), emails is not None, unique, purpose_code, cutoff)
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
        with self.database.unit_of_work() as session:
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
        catalogue = load_catalogue(self.database)
        total = 0
        for purpose in catalogue.purposes.values():
            if not purpose.consent_valid_days:
                continue
            cutoff = now - dt.timedelta(days=purpose.consent_valid_days)
            while True:
                with self.database.unit_of_work() as session:
                    # 'granted' written into the SQL, not bound: a plan PostgreSQL keeps
                    # for any value could not use the index of granted states (partial).
                    states = list(session.scalars(select(ConsentState).where(
                        ConsentState.purpose == purpose.code,
                        ConsentState.status == literal("granted", literal_execute=True),
                        ConsentState.granted_at < cutoff).limit(batch_size)))
                    self._move(session, states, "expired", "expired",
                               {"channel": "scheduler", "form": "consent-expiry"}, now)
                total += len(states)
                if len(states) < batch_size:
                    break
        return total

    # --- clean-ups (run by the scheduler) ----------------------------------------------

    def purge_idempotency_records(self, now: dt.datetime) -> int:
        """Forget stored answers to Idempotency-Keys older than ``IDEMPOTENCY_TTL`` (they hold
        no personal data); a repeat after that is recorded as a new request."""
        with self.database.unit_of_work() as session:
            result = session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - IDEMPOTENCY_TTL))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def purge_confirmations(self, now: dt.datetime) -> int:
        """Drop the rows of expired double opt-in links; pending consents stay pending.

        A used link's row is kept until the link expires: it is what refuses a second click.
        An expired link is refused by its own date, stored or not."""
        with self.database.unit_of_work() as session:
            result = session.execute(delete(Confirmation).where(Confirmation.expires_at < now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
