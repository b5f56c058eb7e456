"""This service's own share of a data-subject request: what it changes in its own tables.

Each function runs inside the caller's write transaction and returns a small summary
that holds no personal values (it goes into the audit log). Connected systems get their
share as tasks (the fan-out); this module is the ``privacy-service`` task.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from privacy.consent.changes import withdraw
from privacy.consent.plan import ACTIVE
from privacy.context import PrivacyContext, as_json_time
from privacy.crypto.keys import HOLD_KEY_PREFIX
from privacy.errors import Conflict, InvalidInput
from privacy.ledger import append_audit
from privacy.policy.catalogue import Catalogue, load_catalogue
from privacy.policy.file import Policy
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.states import CLOSED
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.keys import KeyRepository
from privacy.storage.repositories.ledger import LedgerRepository
from privacy.storage.repositories.requests import RequestRecord, RequestRepository
from privacy.storage.repositories.subjects import HeldValue, SubjectRecord, SubjectRepository

ACTOR = LOCAL_SYSTEM

GIVEN_BY_YOU = "given by you (sign-up form or request)"  # a field's source, in data.json


def validate_changes(policy: Policy, changes: Any) -> dict[str, str]:
    """Rectification changes checked against the fields catalogue: 422 naming the field."""
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput.field("changes", "give at least one field to correct, e.g. {\"first_name\": \"Anna\"}")
    values, problems = policy.normalise_values(changes, "changes")
    if problems:
        raise InvalidInput.fields(problems)
    return values


def validate_purposes(catalogue: Catalogue, purposes: Any) -> list[str]:
    if not isinstance(purposes, list) or not purposes:
        raise InvalidInput.field("purposes", "name at least one purpose to object to")
    problems = {f"purposes.{i}": [f"'{code}' is not a declared purpose"]
                for i, code in enumerate(purposes) if code not in catalogue.purposes}
    if problems:
        raise InvalidInput.fields(problems)
    return sorted(set(purposes))


def _source(request: RequestRecord) -> dict[str, Any]:
    return {"channel": "data-subject-request", "form": request.type, "request": request.id}


def erase(session: Session, ctx: PrivacyContext, subject: SubjectRecord, request: RequestRecord,
          now: dt.datetime) -> dict[str, Any]:
    """Art. 17: keep what a legal hold names, destroy the data key, delete the rows.

    Fields under a hold are re-sealed under the hold's key for the month the hold ends.
    The ledger keeps its pseudonymous events (proof of what was consented and withdrawn),
    and a suppression entry keeps the blind index so that checks deny the person and a
    re-import cannot bring them back.
    """
    catalogue = load_catalogue(ctx.database)
    subjects, states = SubjectRepository(session), ConsentStateRepository(session)
    had = set(states.of_subject(subject.id))
    fields = subjects.fields(subject.id)
    held = held_values(session, ctx, catalogue, subject, had, fields, now)
    if held:
        subjects.hold(subject.id, held, now)
    withdrawn = withdraw(session, catalogue, subject.id, None, _source(request), now)
    subjects.suppress(subject.email_index, subject.id, "erasure", request.id, now)
    forgotten = _forget_other_requests(session, subject, request, now)
    states.forget(subject.id)
    subjects.erase(subject.id, now)  # the database cascades: confirmations, queued mail
    summary = {"request": request.id, "fields_erased": sorted(set(fields) - {h.name for h in held}),
               "fields_held": sorted(h.name for h in held), "holds": sorted({h.hold for h in held}),
               "held": [{"field": h.name, "hold": h.hold, "until": as_json_time(h.until)}
                        for h in sorted(held, key=lambda h: h.name)],
               "withdrawn": withdrawn, "requests_forgotten": forgotten}
    append_audit(session, ACTOR, "subject.erased", now, target=subject.id, details=summary)
    return summary


def held_values(session: Session, ctx: PrivacyContext, catalogue: Catalogue, subject: SubjectRecord, had: set[str],
                fields: dict[str, bytes], now: dt.datetime, dek: bytes | None = None,
                hold_keys: dict[str, bytes] | None = None) -> list[HeldValue]:
    """The fields a legal hold that covers the subject keeps, re-sealed under the hold's key.

    ``dek`` is the subject's data key when the caller already unwrapped it (else it is
    unwrapped when a held field needs it); ``hold_keys`` caches hold keys across subjects.
    """
    crypto = ctx.crypto
    held: list[HeldValue] = []
    for hold in ctx.policy.legal_holds:
        if not hold.covers(catalogue.purposes, had):
            continue
        until = subject.last_activity_at + dt.timedelta(days=hold.period_days)
        if until <= now:
            continue
        for name in hold.fields:
            ciphertext = fields.get(name)
            if ciphertext is None or any(h.name == name for h in held):
                continue
            dek = dek if dek is not None else crypto.data_key(subject)
            value = crypto.decrypt_field(dek, subject.id, name, ciphertext)
            key_name, sealed = crypto.seal_held(session, hold.code, until, subject.id, name, value, now, hold_keys)
            held.append(HeldValue(name, hold.code, until, key_name, sealed))
    return held


def release_expired_holds(session: Session, now: dt.datetime) -> dict[str, int]:
    """Legal holds that have ended: delete the held fields, then destroy every hold key of a
    month that is over (nothing sealed under it may outlive its hold)."""
    subjects = SubjectRepository(session)
    fields = subjects.release_held(now)
    month = f"{now:%Y-%m}"
    keys = KeyRepository(session)
    spent = [name for name in keys.names_starting(HOLD_KEY_PREFIX) if name.rsplit("|", 1)[-1] < month]
    if spent:
        subjects.drop_held_under(spent)
        keys.delete(spent)
    summary = {"fields": fields, "keys": len(spent)}
    if fields or spent:
        append_audit(session, ACTOR, "holds.released", now, details=summary)
    return summary


def _forget_other_requests(session: Session, subject: SubjectRecord, request: RequestRecord, now: dt.datetime
                           ) -> int:
    """The person's other closed requests lose their key (address, details, any access
    package still on disk, which is then deleted at the next sweep): erasure leaves no copy."""
    requests = RequestRepository(session)
    others = requests.ids_keyed_of_person(subject.email_index, subject.id, CLOSED, except_id=request.id)
    for other in others:
        requests.forget(other, now)
        requests.expire_package(other, now)
    return len(others)


def rectify(session: Session, ctx: PrivacyContext, subject: SubjectRecord, request: RequestRecord,
            changes: dict[str, str], now: dt.datetime) -> dict[str, Any]:
    """Art. 16: apply corrected values, only for fields a purpose the subject holds needs."""
    crypto, catalogue = ctx.crypto, load_catalogue(ctx.database)
    subjects = SubjectRepository(session)
    active = {code for code, s in ConsentStateRepository(session).of_subject(subject.id).items() if s.status in ACTIVE}
    needed = {f for code in active if code in catalogue.purposes for f in catalogue.purposes[code].fields}
    index = None
    if "email" in changes:
        index = crypto.blind_index(changes["email"])
        if subjects.index_taken(index, subject.id):
            raise Conflict("the new e-mail address belongs to another subject", {"changes.email": ["in use"]})
    dek = crypto.data_key(subject)
    stored = set(subjects.fields(subject.id))
    sealed: dict[str, bytes] = {}
    not_stored = []
    for name, value in sorted(changes.items()):
        if name not in needed and name not in stored:
            not_stored.append(name)  # minimisation: no purpose the subject holds needs it
            continue
        sealed[name] = crypto.encrypt_field(dek, subject.id, name, value)
    subjects.save_fields(subject.id, sealed, stored, now)
    subjects.updated(subject.id, now, email_index=index)
    summary = {"request": request.id, "fields": list(sealed), "not_stored": not_stored}
    append_audit(session, ACTOR, "subject.rectified", now, target=subject.id, details=summary)
    return summary


def restrict(session: Session, subject: SubjectRecord, request: RequestRecord, restricted: bool,
             now: dt.datetime, actor: str = ACTOR) -> dict[str, Any]:
    """Art. 18: while a restriction stands every consent check denies the subject."""
    SubjectRepository(session).set_restricted(subject.id, restricted, now)
    summary = {"request": request.id, "restricted": restricted}
    append_audit(session, actor, "subject.restricted" if restricted else "subject.restriction_lifted", now,
                 target=subject.id, details=summary)
    return summary


def object_to(session: Session, ctx: PrivacyContext, subject: SubjectRecord, request: RequestRecord,
              purposes: list[str], now: dt.datetime) -> dict[str, Any]:
    """Art. 21(2)-(3): the named purposes are withdrawn at once, on every channel."""
    withdrawn = withdraw(session, load_catalogue(ctx.database), subject.id, purposes, _source(request), now)
    summary = {"request": request.id, "purposes": purposes, "withdrawn": withdrawn}
    append_audit(session, ACTOR, "subject.objected", now, target=subject.id, details=summary)
    return summary


# --- what an access or portability package holds ---------------------------------------

def collect(session: Session, ctx: PrivacyContext, subject: SubjectRecord | None, request: RequestRecord,
            portability: bool, systems: dict[str, Any]) -> dict[str, Any]:
    """The data of Art. 15(1) (or, for portability, Art. 20's share) as the package's data.json.

    ``consent_history`` is a generator over the ledger, so a long history is streamed
    into the package rather than held in memory.
    """
    catalogue = load_catalogue(ctx.database)
    policy = ctx.policy
    purposes = catalogue.purposes
    if portability:  # Art. 20: only what the subject gave under consent or contract
        purposes = {c: p for c, p in purposes.items() if p.legal_basis in ("consent", "contract")}
    states = [] if subject is None else [
        s for code, s in ConsentStateRepository(session).of_subject(subject.id).items() if code in purposes]
    holding = {s.purpose for s in states if s.status in ACTIVE}
    fields: list[dict[str, Any]] = []
    if subject is not None:
        dek = ctx.crypto.data_key(subject)
        for name, ciphertext in SubjectRepository(session).fields(subject.id).items():
            used_by = sorted(c for c in holding if name in purposes[c].fields)
            if portability and not used_by:
                continue
            spec = policy.fields.get(name)
            fields.append({"name": name, "label": policy.field_label(name, request.language),
                           "category": spec.category if spec else "other",
                           "value": ctx.crypto.decrypt_field(dek, subject.id, name, ciphertext),
                           "purposes": used_by, "source": GIVEN_BY_YOU})
    shown = [p for c, p in sorted(purposes.items()) if portability is False or c in {s.purpose for s in states}]
    return {
        "subject": {"subject_id": subject.id if subject else None, "fields": fields},
        "consents": [{"purpose": s.purpose, "status": s.status, "notice_version": s.notice_version,
                      "recorded_at": as_json_time(s.recorded_at), "granted_at": as_json_time(s.granted_at)}
                     for s in states],
        "consent_history": _history(session, subject.id if subject else None, set(purposes)),
        "requests": [] if portability else _requests(session, request, subject),
        "purposes": [{"code": p.code, "name": p.name, "legal_basis": p.legal_basis, "fields": list(p.fields),
                      "recipients": list(p.recipients), "retention": p.retention,
                      "notice_version": (p.notice or {}).get("version")} for p in shown],
        "recipients": sorted({r for p in shown for r in p.recipients}),
        "retention": [{"purpose": p.code, **{k: (p.retention or {}).get(k) for k in ("period_days", "after",
                                                                                     "action")}}
                      for p in shown if p.retention],
        "sources": _sources(session, subject.id) if subject is not None else [],
        "systems": systems,
        "field_labels": {name: policy.field_label(name, request.language) for name in sorted(policy.fields)},
    }


def _history(session: Session, subject_id: str | None, purposes: set[str]) -> Iterator[dict[str, Any]]:
    if subject_id is None:
        return
    for e in LedgerRepository(session).stream_events_of(subject_id):
        if e.purpose in purposes:
            yield {"seq": e.seq, "purpose": e.purpose, "action": e.action, "status": e.status,
                   "notice_version": e.notice_version, "text_hash": e.text_hash, "source": json.loads(e.source),
                   "recorded_at": as_json_time(e.recorded_at)}


def _requests(session: Session, request: RequestRecord, subject: SubjectRecord | None) -> list[dict[str, Any]]:
    rows = RequestRepository(session).of_person(request.email_index, subject.id if subject is not None else None)
    return [{"id": r.id, "type": r.type, "status": r.status, "received_at": as_json_time(r.received_at),
             "due_at": as_json_time(r.extended_until or r.due_at), "completed_at": as_json_time(r.completed_at)}
            for r in rows]


def _sources(session: Session, subject_id: str) -> list[str]:
    out = set()
    for raw in LedgerRepository(session).sources_of(subject_id):
        src = json.loads(raw)
        out.add(" / ".join(f"{k}: {v}" for k, v in sorted(src.items()) if k in ("form", "channel")) or "unknown")
    return sorted(out)
