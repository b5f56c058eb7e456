"""What every part of request handling does with a request's row: load it (locked for a
write), read and re-seal the details it holds under its own key (address, changes,
reasons), queue a mail to its customer, and show it.

A request's personal details are sealed under the request's own key, so that destroying
that key (``housekeeping``, or an erasure) forgets them while dates, status and audit
trail stay as proof that it was handled.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import as_json_time
from privacy.crypto.keys import Crypto
from privacy.errors import Conflict, NotFound
from privacy.mail.mailer import OutgoingMail
from privacy.mail.outbox import sealed_mail
from privacy.storage.repositories.outbox import OutboxRepository
from privacy.storage.repositories.requests import RequestRecord, RequestRepository
from privacy.storage.repositories.subjects import SubjectRecord, SubjectRepository

LOCAL_SYSTEM = "privacy-service"  # this service, as the actor of automatic moves and as a system with a task


def load(session: Session, request_id: str, lock: bool = False) -> RequestRecord:
    """The request, or 404; with ``lock``, its row is locked for this transaction
    (PostgreSQL), so two clicks, or a click and the scheduler, move it one at a time
    (SQLite writers are serialised already)."""
    try:
        uuid.UUID(request_id)
    except ValueError:
        raise NotFound(f"request '{request_id[:64]}' not found") from None
    request = RequestRepository(session).get(request_id, lock=lock)
    if request is None:
        raise NotFound(f"request '{request_id}' not found")
    return request


def seal_details(crypto: Crypto, key: bytes, request_id: str, details: dict[str, Any]) -> bytes:
    return crypto.encrypt_field(key, request_id, "details", json.dumps(details, sort_keys=True))


def open_details(crypto: Crypto, request: RequestRecord) -> dict[str, Any]:
    """The sealed details of a request whose key still exists."""
    key = crypto.request_key(request)
    assert request.sealed is not None
    details: dict[str, Any] = json.loads(crypto.decrypt_field(key, request.id, "details", request.sealed))
    return details


def queue_mail(session: Session, crypto: Crypto, key: bytes, request_id: str, mail: OutgoingMail,
               now: dt.datetime) -> None:
    """Put a mail to the customer in the outbox, sealed under the request's key, in the
    caller's transaction (so it is sent only if what it tells is committed)."""
    OutboxRepository(session).add([sealed_mail(crypto, key, request_id, mail, now, for_request=True)])


def customer_address(crypto: Crypto, session: Session, request: RequestRecord, subject: SubjectRecord) -> str:
    """Where to write to the customer of ``request``: the address the request was opened
    with, or, once its details were forgotten (90 days after it closed), the subject's own."""
    if request.wrapped_key is not None:
        return str(open_details(crypto, request)["email"])
    sealed = SubjectRepository(session).fields(subject.id).get("email") if subject.wrapped_key is not None else None
    if sealed is None:
        raise Conflict("the customer cannot be told: neither the request nor the subject keeps an address",
                       {"email": ["not kept"]}, code="no_address")
    return crypto.decrypt_field(crypto.data_key(subject), subject.id, "email", sealed)


def queue_notice(session: Session, crypto: Crypto, request: RequestRecord, subject: SubjectRecord, mail: OutgoingMail,
                 now: dt.datetime) -> None:
    """:func:`queue_mail` under the request's key, or the subject's once the request's is gone."""
    if request.wrapped_key is not None:
        queue_mail(session, crypto, crypto.request_key(request), request.id, mail, now)
    else:
        OutboxRepository(session).add([sealed_mail(crypto, crypto.data_key(subject), subject.id, mail, now)])


def view(request: RequestRecord) -> dict[str, Any]:
    """The request's dates and status as the API shows them (no personal details)."""
    deadline = request.extended_until or request.due_at
    return {"id": request.id, "type": request.type, "status": request.status,
            "received_at": as_json_time(request.received_at), "due_at": as_json_time(request.due_at),
            "extended_until": as_json_time(request.extended_until), "deadline": as_json_time(deadline),
            "verified_at": as_json_time(request.verified_at), "completed_at": as_json_time(request.completed_at),
            "subject_id": request.subject_id, "language": request.language}
