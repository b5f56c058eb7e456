"""A customer opens a request and proves, with a mailed link, that the address is theirs.

Nothing is looked up when a request is opened, so the answer and its timing are the same
whether the address is known or not (no enumeration). Only the verification link, a
single-use token (``tokens``), finds the subject and starts the work (``workflow``).
The request is due one calendar month after receipt, in the controller's time zone
(Art. 12(3), ``deadlines``).
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from privacy.context import Packager, PrivacyContext, as_json_time
from privacy.errors import Conflict, InvalidInput
from privacy.languages import with_language
from privacy.ledger import append_audit, timestamp
from privacy.policy.catalogue import load_catalogue
from privacy.policy.fields import FieldValueError, normalise
from privacy.requests import fulfilment, records, tokens
from privacy.requests import mail as request_mail
from privacy.requests.deadlines import controller_time_zone, one_month_after
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.states import TYPES, move
from privacy.requests.tokens import VERIFY_DAYS
from privacy.requests.workflow import WorkflowService
from privacy.storage.repositories.requests import RequestRecord, RequestRepository
from privacy.storage.repositories.subjects import SubjectRepository

log = logging.getLogger(__name__)

CUSTOMER_VIEW = ("id", "type", "status", "received_at", "due_at", "extended_until")


@dataclass
class RequestCommand:
    """A customer's request as parsed from the HTTP body (shape only)."""

    type: str
    email: str
    language: str = "en"
    changes: dict[str, Any] | None = None
    purposes: list[str] | None = None


class IntakeService:
    def __init__(self, ctx: PrivacyContext, packager: Packager | None = None) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.session = ctx.database.session
        self.tz = controller_time_zone(ctx.policy.controller)
        self.workflow = WorkflowService(ctx, packager)

    def open(self, cmd: RequestCommand, now: dt.datetime) -> dict[str, Any]:
        """Open a request and mail the verification link; the same answer for any address."""
        details = self._validate(cmd)
        crypto = self.ctx.crypto
        request_id = str(uuid.uuid4())
        key, wrapped = crypto.new_request_key(request_id)
        due = one_month_after(now, self.tz)
        with self.database.unit_of_work() as session:
            RequestRepository(session).add(RequestRecord(
                id=request_id, type=cmd.type, status="pending_verification",
                email_index=crypto.blind_index(details["email"]), subject_id=None, wrapped_key=wrapped,
                master_key_id=crypto.master_key_id, sealed=records.seal_details(crypto, key, request_id, details),
                language=cmd.language, received_at=now, due_at=due, extended_until=None, verified_at=None,
                completed_at=None, updated_at=now))
            token = tokens.issue(session, request_id, "verify", now + dt.timedelta(days=VERIFY_DAYS), 1)
            link = with_language(f"{self.ctx.public_url}/v1/requests/{request_id}/verify?token={token}",
                                 cmd.language)
            type_name = request_mail.type_name(cmd.language, cmd.type)
            body = request_mail.text(cmd.language, "verify.body", type=type_name, link=link, days=VERIFY_DAYS,
                                     id=request_id)
            mail = request_mail.mail(details["email"], cmd.language, "verify.subject", body, type=type_name)
            records.queue_mail(session, crypto, key, request_id, mail, now)
            append_audit(session, "customer", "request.received", now, target=request_id,
                         details={"type": cmd.type, "due_at": timestamp(due)})
        log.info("request opened id=%s type=%s", request_id, cmd.type)
        return {"id": request_id, "status": "pending_verification", "due_at": as_json_time(due)}

    def _validate(self, cmd: RequestCommand) -> dict[str, Any]:
        """The details to seal: a normalised address, and a rectification's changes or an
        objection's purposes (422 naming the field)."""
        if cmd.type not in TYPES:
            raise InvalidInput.field("type", f"'{cmd.type}' is not one of {', '.join(TYPES)}")
        try:
            email = normalise("email", cmd.email)
        except FieldValueError as exc:
            raise InvalidInput.field("email", str(exc)) from exc
        details: dict[str, Any] = {"email": email}
        if cmd.type == "rectification":
            details["changes"] = fulfilment.validate_changes(self.ctx.policy, cmd.changes)
        elif cmd.changes is not None:
            raise InvalidInput.field("changes", "only a rectification request carries changes")
        if cmd.type == "objection":
            details["purposes"] = fulfilment.validate_purposes(load_catalogue(self.database), cmd.purposes)
        elif cmd.purposes is not None:
            raise InvalidInput.field("purposes", "only an objection names purposes")
        return details

    def verify(self, request_id: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """Follow the mailed link: the request is verified and its work planned and started.
        Returns what the customer may see of it."""
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            tokens.use(session, request, token, "verify", now)
            if request.status != "pending_verification":
                raise Conflict(f"the request is {request.status}", {"status": [request.status]},
                               code="not_pending_verification")
            found = SubjectRepository(session).by_email_index(request.email_index)
            subject = found if found is not None and found.wrapped_key is not None else None
            RequestRepository(session).set_verified(request, subject.id if subject is not None else None, now)
            move(session, request, "verified", "customer", now)
            systems = self.workflow.plan_tasks(session, request, now)
            move(session, request, "in_progress", LOCAL_SYSTEM, now, {"systems": systems})
        self.workflow.advance(request_id, now)
        view = records.view(records.load(self.session(), request_id))
        return {k: view[k] for k in CUSTOMER_VIEW}  # no history, no subject id
