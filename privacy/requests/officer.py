"""What the data protection officer does with requests: the queue and one request's
history, one extension of the deadline (Art. 12(3)), a refusal (Art. 12(4)), lifting a
restriction (Art. 18(3)), and downloading an access package. Each decision is mailed to
the customer, with its reason, in the transaction that makes it.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from privacy.context import Packager, PrivacyContext, as_json_time
from privacy.errors import Conflict, InvalidInput
from privacy.ledger import append_audit, timestamp
from privacy.requests import fulfilment, records
from privacy.requests import mail as request_mail
from privacy.requests.deadlines import controller_time_zone, extended, is_overdue
from privacy.requests.packages import PackageService
from privacy.requests.states import OPEN, is_open, move
from privacy.storage.repositories.ledger import LedgerRepository
from privacy.storage.repositories.requests import RequestRepository
from privacy.storage.repositories.subjects import SubjectRepository
from privacy.storage.repositories.tasks import TaskRepository

MAX_REASON = 2000


class OfficerService:
    def __init__(self, ctx: PrivacyContext, packager: Packager | None = None) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.session = ctx.database.session
        self.tz = controller_time_zone(ctx.policy.controller)
        self.packages = PackageService(ctx, packager)

    # --- reading --------------------------------------------------------------------

    def get(self, request_id: str) -> dict[str, Any]:
        """One request with each system's status and its history (from the audit log)."""
        request = records.load(self.session(), request_id)
        tasks = TaskRepository(self.session).of_request(request_id)
        history = LedgerRepository(self.session).audit_of(request_id)
        view = records.view(request)
        view["systems"] = [{"name": t.system, "status": t.status, "attempts": t.attempts, "last_error": t.last_error,
                            "outcome": t.outcome, "operation": t.operation, "finished_at": as_json_time(t.finished_at)}
                           for t in tasks]
        view["history"] = [{"at": as_json_time(e.at), "action": e.action, "actor": e.actor,
                            "details": json.loads(e.details)} for e in history]
        details = records.open_details(self.ctx.crypto, request) if request.wrapped_key is not None else {}
        for name in ("extension_reason", "rejection_reason"):
            if name in details:
                view[name] = details[name]
        return view

    def queue(self, now: dt.datetime, status: str | None = None, type_: str | None = None,
              overdue: bool | None = None, due_before: dt.datetime | None = None, limit: int = 500
              ) -> list[dict[str, Any]]:
        """The officer's queue, soonest deadline first."""
        rows = RequestRepository(self.session).queue(now, OPEN, status=status, type_=type_, overdue=overdue,
                                                     due_before=due_before, limit=limit)
        return [{**records.view(r), "overdue": is_open(r.status) and is_overdue(r.extended_until or r.due_at, now)}
                for r in rows]

    # --- decisions ------------------------------------------------------------------

    def extend(self, request_id: str, days: int, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Art. 12(3): one extension of up to two months, while the first month runs, mailed with its reason."""
        reason = _reason(reason)
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            if not is_open(request.status):
                raise Conflict(f"the request is {request.status}", {"status": [request.status]}, code="request_closed")
            if request.extended_until is not None:
                raise Conflict("the request was already extended once", {"days": ["already extended"]},
                               code="already_extended")
            if now > request.due_at:
                raise Conflict("an extension must be given within the first month", {"days": ["too late"]},
                               code="deadline_passed")
            try:
                until = extended(request.due_at, days, self.tz)
            except ValueError as exc:
                raise InvalidInput.field("days", str(exc)) from None
            key = self.ctx.crypto.request_key(request)
            details = records.open_details(self.ctx.crypto, request)
            details["extension_reason"] = reason
            RequestRepository(session).set_extended(
                request, until, records.seal_details(self.ctx.crypto, key, request.id, details), now)
            due_local = until.astimezone(self.tz).date().isoformat()
            lang = request.language
            body = request_mail.text(lang, "extended.body", type=request_mail.type_name(lang, request.type),
                                     reason=reason, due=due_local, id=request.id)
            mail = request_mail.mail(details["email"], lang, "extended.subject", body)
            records.queue_mail(session, self.ctx.crypto, key, request.id, mail, now)
            append_audit(session, actor, "request.extended", now, target=request.id,
                         details={"days": days, "extended_until": timestamp(until)})
        return self.get(request_id)

    def reject(self, request_id: str, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Refuse a request (Art. 12(4)): mailed with its reason and the right to complain."""
        reason = _reason(reason)
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            move(session, request, "rejected", actor, now)  # first: a closed request may have lost its key
            details = records.open_details(self.ctx.crypto, request)
            details["rejection_reason"] = reason
            key = self.ctx.crypto.request_key(request)
            requests = RequestRepository(session)
            requests.set_sealed(request, records.seal_details(self.ctx.crypto, key, request.id, details))
            requests.set_completed(request, now)
            authority = self.ctx.policy.controller.get("supervisory_authority") or {}
            lang = request.language
            body = request_mail.text(lang, "rejected.body", type=request_mail.type_name(lang, request.type),
                                     reason=reason, authority=authority.get("name", ""), url=authority.get("url", ""),
                                     id=request.id)
            mail = request_mail.mail(details["email"], lang, "rejected.subject", body)
            records.queue_mail(session, self.ctx.crypto, key, request.id, mail, now)
        return self.get(request_id)

    def lift_restriction(self, request_id: str, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Art. 18(3): the customer is told before the restriction is lifted.

        The notice goes into the outbox in the transaction that lifts it, ahead of it.
        """
        reason = _reason(reason)
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            if request.type != "restriction" or request.status not in ("completed", "partially_completed"):
                raise Conflict("only a completed restriction request can be lifted", {"type": [request.type]},
                               code="not_a_restriction")
            subject = SubjectRepository(session).get(request.subject_id) if request.subject_id else None
            if subject is None or not subject.restricted:
                raise Conflict("no restriction stands for this request", {"restricted": ["false"]},
                               code="not_restricted")
            body = request_mail.text(request.language, "lift.body", reason=reason, id=request.id)
            records.queue_notice(session, self.ctx.crypto, request, subject, request_mail.mail(
                records.customer_address(self.ctx.crypto, session, request, subject), request.language,
                "lift.subject", body), now)
            append_audit(session, actor, "request.restriction_lift_notified", now, target=request.id)
            fulfilment.restrict(session, subject, request, False, now, actor=actor)
        return self.get(request_id)

    # --- packages -------------------------------------------------------------------

    def package_for_officer(self, request_id: str, actor: str, now: dt.datetime) -> tuple[str, Iterator[bytes]]:
        """The request's access or portability package, while it lasts; the download is audited."""
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            package = self.packages.live_package(session, request, now)
            append_audit(session, actor, "request.package_downloaded", now, target=request.id,
                         details={"package": package.id, "by": "officer"})
            return self.packages.stream(request, package)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput.field("reason", "must not be empty")
    if len(reason) > MAX_REASON:
        raise InvalidInput.field("reason", f"is longer than {MAX_REASON} characters")
    return reason
