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

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from privacy.consent.plan import ACTIVE
from privacy.consent.service import ConsentService
from privacy.context import PrivacyContext, as_json_time
from privacy.crypto.keys import shred
from privacy.errors import Conflict, InvalidInput
from privacy.ledger import append_audit
from privacy.policy.catalogue import Catalogue, load_catalogue
from privacy.policy.file import Policy
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.states import CLOSED
from privacy.storage.models import (
    ConsentEvent,
    ConsentState,
    DataRequest,
    ExportPackage,
    HeldField,
    KeyringEntry,
    RequestTask,
    Subject,
    SubjectField,
    Suppression,
)

ACTOR = LOCAL_SYSTEM


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


def _source(request: DataRequest) -> dict[str, Any]:
    return {"channel": "data-subject-request", "form": request.type, "request": request.id}


def erase(session: Session, ctx: PrivacyContext, subject: Subject, request: DataRequest,
          now: dt.datetime) -> dict[str, Any]:
    """Art. 17: keep what a legal hold names, destroy the data key, delete the rows.

    Fields under a hold are re-sealed under the hold's key for the month the hold ends.
    The ledger keeps its pseudonymous events (proof of what was consented and withdrawn),
    and a suppression entry keeps the blind index so that checks deny the person and a
    re-import cannot bring them back.
    """
    crypto, catalogue = ctx.crypto, load_catalogue(ctx.database)
    had = set(session.scalars(select(ConsentState.purpose).where(ConsentState.subject_id == subject.id)))
    dek = crypto.data_key(subject)
    fields = {f.name: f for f in session.scalars(select(SubjectField).where(SubjectField.subject_id == subject.id))}
    held: list[dict[str, Any]] = []
    for hold in ctx.policy.legal_holds:
        if not hold.covers(catalogue.purposes, had):
            continue
        until = subject.last_activity_at + dt.timedelta(days=hold.period_days)
        if until <= now:
            continue
        for name in hold.fields:
            row = fields.get(name)
            if row is None or any(h["name"] == name for h in held):
                continue
            value = crypto.decrypt_field(dek, subject.id, name, row.ciphertext)
            key_name, ciphertext = crypto.seal_held(session, hold.code, until, subject.id, name, value, now)
            held.append({"subject_id": subject.id, "name": name, "hold": hold.code, "until": until,
                         "key_name": key_name, "ciphertext": ciphertext, "created_at": now})
    if held:
        session.execute(insert(HeldField), held)
    withdrawn = ConsentService(ctx).withdraw_for(session, subject.id, None, _source(request), now)
    session.execute(insert(Suppression), [{"email_index": subject.email_index, "subject_id": subject.id,
                                           "reason": "erasure", "request_id": request.id, "created_at": now}])
    forgotten = _forget_other_requests(session, subject, request, now)
    shred(subject, now)
    session.flush()
    session.execute(delete(SubjectField).where(SubjectField.subject_id == subject.id))
    session.execute(delete(ConsentState).where(ConsentState.subject_id == subject.id))
    session.execute(delete(Subject).where(Subject.id == subject.id))  # cascades: confirmations, queued mail
    summary = {"request": request.id, "fields_erased": sorted(set(fields) - {h["name"] for h in held}),
               "fields_held": sorted(h["name"] for h in held), "holds": sorted({h["hold"] for h in held}),
               "withdrawn": withdrawn, "requests_forgotten": forgotten}
    append_audit(session, ACTOR, "subject.erased", now, target=subject.id, details=summary)
    return summary


def release_expired_holds(session: Session, now: dt.datetime) -> dict[str, int]:
    """Legal holds that have ended: delete the held fields, then destroy every hold key of a
    month that is over (nothing sealed under it may outlive its hold)."""
    fields = session.execute(delete(HeldField).where(HeldField.until <= now)).rowcount or 0  # type: ignore[attr-defined]
    month = f"{now:%Y-%m}"
    spent = [name for name in session.scalars(select(KeyringEntry.name).where(KeyringEntry.name.like("hold|%")))
             if name.rsplit("|", 1)[-1] < month]
    if spent:
        session.execute(delete(HeldField).where(HeldField.key_name.in_(spent)))
        session.execute(delete(KeyringEntry).where(KeyringEntry.name.in_(spent)))
    summary = {"fields": int(fields), "keys": len(spent)}
    if fields or spent:
        append_audit(session, ACTOR, "holds.released", now, details=summary)
    return summary


def _forget_other_requests(session: Session, subject: Subject, request: DataRequest, now: dt.datetime) -> int:
    """The person's other closed requests lose their key (address, details, any access
    package still on disk, which is then deleted at the next sweep): erasure leaves no copy."""
    others = list(session.scalars(select(DataRequest).where(
        or_(DataRequest.subject_id == subject.id, DataRequest.email_index == subject.email_index),
        DataRequest.id != request.id, DataRequest.status.in_(CLOSED), DataRequest.wrapped_key.is_not(None))))
    for other in others:
        other.wrapped_key = other.master_key_id = other.sealed = None
        other.updated_at = now
        session.execute(update(RequestTask).where(RequestTask.request_id == other.id).values(result=None))
        session.execute(update(ExportPackage).where(ExportPackage.request_id == other.id,
                                                    ExportPackage.deleted_at.is_(None)).values(expires_at=now))
    return len(others)


def rectify(session: Session, ctx: PrivacyContext, subject: Subject, request: DataRequest,
            changes: dict[str, str], now: dt.datetime) -> dict[str, Any]:
    """Art. 16: apply corrected values, only for fields a purpose the subject holds needs."""
    crypto, catalogue = ctx.crypto, load_catalogue(ctx.database)
    active = set(session.scalars(select(ConsentState.purpose).where(
        ConsentState.subject_id == subject.id, ConsentState.status.in_(sorted(ACTIVE)))))
    needed = {f for code in active if code in catalogue.purposes for f in catalogue.purposes[code].fields}
    if "email" in changes:
        index = crypto.blind_index(changes["email"])
        taken = session.scalar(select(Subject.id).where(Subject.email_index == index, Subject.id != subject.id))
        if taken is not None or session.get(Suppression, index) is not None:
            raise Conflict("the new e-mail address belongs to another subject", {"changes.email": ["in use"]})
        subject.email_index = index
    dek = crypto.data_key(subject)
    existing = {f.name: f for f in session.scalars(select(SubjectField).where(SubjectField.subject_id == subject.id))}
    applied, not_stored = [], []
    for name, value in sorted(changes.items()):
        if name not in needed and name not in existing:
            not_stored.append(name)  # minimisation: no purpose the subject holds needs it
            continue
        ciphertext = crypto.encrypt_field(dek, subject.id, name, value)
        if name in existing:
            existing[name].ciphertext, existing[name].updated_at = ciphertext, now
        else:
            session.add(SubjectField(subject_id=subject.id, name=name, ciphertext=ciphertext, updated_at=now))
        applied.append(name)
    subject.updated_at = now
    summary = {"request": request.id, "fields": applied, "not_stored": not_stored}
    append_audit(session, ACTOR, "subject.rectified", now, target=subject.id, details=summary)
    return summary


def restrict(session: Session, subject: Subject, request: DataRequest, restricted: bool,
             now: dt.datetime, actor: str = ACTOR) -> dict[str, Any]:
    """Art. 18: while a restriction stands every consent check denies the subject."""
    subject.restricted = restricted
    subject.updated_at = now
    summary = {"request": request.id, "restricted": restricted}
    append_audit(session, actor, "subject.restricted" if restricted else "subject.restriction_lifted", now,
                 target=subject.id, details=summary)
    return summary


def object_to(session: Session, ctx: PrivacyContext, subject: Subject, request: DataRequest,
              purposes: list[str], now: dt.datetime) -> dict[str, Any]:
    """Art. 21(2)-(3): the named purposes are withdrawn at once, on every channel."""
    withdrawn = ConsentService(ctx).withdraw_for(session, subject.id, purposes, _source(request), now)
    summary = {"request": request.id, "purposes": purposes, "withdrawn": withdrawn}
    append_audit(session, ACTOR, "subject.objected", now, target=subject.id, details=summary)
    return summary


# --- what an access or portability package holds ---------------------------------------

def collect(session: Session, ctx: PrivacyContext, subject: Subject | None, request: DataRequest,
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
    states = [] if subject is None else list(session.scalars(
        select(ConsentState).where(ConsentState.subject_id == subject.id, ConsentState.purpose.in_(list(purposes)))
        .order_by(ConsentState.purpose)))
    holding = {s.purpose for s in states if s.status in ACTIVE}
    fields: list[dict[str, Any]] = []
    if subject is not None:
        dek = ctx.crypto.data_key(subject)
        for row in session.scalars(select(SubjectField).where(SubjectField.subject_id == subject.id)
                                   .order_by(SubjectField.name)):
            used_by = sorted(c for c in holding if row.name in purposes[c].fields)
            if portability and not used_by:
                continue
            spec = policy.fields.get(row.name)
            fields.append({"name": row.name, "category": spec.category if spec else "other",
                           "value": ctx.crypto.decrypt_field(dek, subject.id, row.name, row.ciphertext),
                           "purposes": used_by, "source": "given by you (sign-up form or request)"})
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
    }


def _history(session: Session, subject_id: str | None, purposes: set[str]) -> Iterator[dict[str, Any]]:
    if subject_id is None:
        return
    rows = session.execute(select(ConsentEvent).where(ConsentEvent.subject_id == subject_id)
                           .order_by(ConsentEvent.seq).execution_options(yield_per=500)).scalars()
    for e in rows:
        if e.purpose in purposes:
            yield {"seq": e.seq, "purpose": e.purpose, "action": e.action, "status": e.status,
                   "notice_version": e.notice_version, "text_hash": e.text_hash, "source": json.loads(e.source),
                   "recorded_at": as_json_time(e.recorded_at)}


def _requests(session: Session, request: DataRequest, subject: Subject | None) -> list[dict[str, Any]]:
    who = [DataRequest.email_index == request.email_index]
    if subject is not None:
        who.append(DataRequest.subject_id == subject.id)
    rows = session.scalars(select(DataRequest).where(or_(*who)).order_by(DataRequest.received_at))
    return [{"id": r.id, "type": r.type, "status": r.status, "received_at": as_json_time(r.received_at),
             "due_at": as_json_time(r.extended_until or r.due_at), "completed_at": as_json_time(r.completed_at)}
            for r in rows]


def _sources(session: Session, subject_id: str) -> list[str]:
    seen = session.scalars(select(ConsentEvent.source).where(ConsentEvent.subject_id == subject_id).distinct())
    out = set()
    for raw in seen:
        src = json.loads(raw)
        out.add(" / ".join(f"{k}: {v}" for k, v in sorted(src.items()) if k in ("form", "channel")) or "unknown")
    return sorted(out)
