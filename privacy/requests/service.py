"""RequestService: data-subject requests (GDPR Art. 15-18, 20, 21) from intake to answer.

A customer opens a request with an e-mail address; nothing is looked up then, so the
answer and its timing are the same whether the address is known or not (no
enumeration). A mailed single-use token proves the person controls the address; only
then is the subject found and anything released, changed or erased. Verification plans
one task per system (this service's own, and each connected system whose operations
cover the request); the request completes when every task has an outcome. Every
transition is an audit entry whose target is the request, and that is its history.

Deadlines are calendar months in the controller's time zone (Art. 12(3)).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from privacy.context import Packager, PrivacyContext, as_json_time
from privacy.crypto.keys import token_hash
from privacy.errors import Conflict, Gone, InvalidInput, NotFound
from privacy.ledger import append_audit, timestamp
from privacy.mail.mailer import OutgoingMail
from privacy.mail.outbox import sealed_mail
from privacy.policy.catalogue import load_catalogue
from privacy.policy.fields import FieldValueError, normalise
from privacy.requests import fulfilment
from privacy.requests import mail as request_mail
from privacy.requests.deadlines import extended, one_month_after, time_zone
from privacy.storage.models import DataRequest, ExportPackage, RequestTask, RequestToken
from privacy.storage.repositories.ledger import LedgerRepository
from privacy.storage.repositories.outbox import OutboxRepository
from privacy.storage.repositories.subjects import SubjectRecord, SubjectRepository

log = logging.getLogger(__name__)

TYPES = ("access", "erasure", "rectification", "restriction", "portability", "objection")
STATUSES = ("pending_verification", "verified", "in_progress", "completed", "partially_completed", "rejected",
            "expired")
TASK_STATUSES = ("pending", "in_progress", "succeeded", "failed", "skipped")
TASK_DONE = ("succeeded", "failed", "skipped")
TRANSITIONS = {
    "pending_verification": ("verified", "expired", "rejected"),
    "verified": ("in_progress", "rejected"),
    "in_progress": ("completed", "partially_completed", "rejected"),
}
LOCAL_SYSTEM = "privacy-service"
# What a connected system is asked to do for each request type (CONTRACT.md, webhook protocol).
CONNECTOR_OPERATION = {"access": "access", "portability": "access", "erasure": "erasure",
                       "rectification": "rectification", "restriction": "restriction", "objection": "consent"}
VERIFY_DAYS = 7
DOWNLOAD_DAYS = 7
DOWNLOAD_USES = 3
MAX_REASON = 2000
CUSTOMER_VIEW = ("id", "type", "status", "received_at", "due_at", "extended_until")
LOCAL_ATTEMPTS = 5  # this service's own work is retried by the scheduler before it counts as failed
DETAILS_KEPT = dt.timedelta(days=90)  # after closing: time to answer follow-up questions, then forget


@dataclass
class RequestCommand:
    """A customer's request as parsed from the HTTP body (shape only)."""

    type: str
    email: str
    language: str = "en"
    changes: dict[str, Any] | None = None
    purposes: list[str] | None = None


class RequestService:
    def __init__(self, ctx: PrivacyContext, packager: Packager | None = None) -> None:
        self.database = ctx.database
        self.session = ctx.database.session
        self.ctx = ctx
        self.packager = packager if packager is not None else ctx.packages
        self.tz = time_zone(ctx.policy.controller.get("time_zone") or "Europe/Stockholm")

    # --- intake ---------------------------------------------------------------------

    def open(self, cmd: RequestCommand, now: dt.datetime) -> dict[str, Any]:
        """Open a request and mail the verification link; the same answer for any address."""
        details = self._validate(cmd)
        crypto = self.ctx.crypto
        request_id = str(uuid.uuid4())
        key, wrapped = crypto.new_request_key(request_id)
        token = secrets.token_urlsafe(32)
        due = one_month_after(now, self.tz)
        with self.database.unit_of_work() as session:
            session.execute(insert(DataRequest), [{
                "id": request_id, "type": cmd.type, "status": "pending_verification",
                "email_index": crypto.blind_index(details["email"]), "subject_id": None, "wrapped_key": wrapped,
                "master_key_id": crypto.master_key_id, "language": cmd.language, "received_at": now,
                "due_at": due, "extended_until": None, "verified_at": None, "completed_at": None,
                "updated_at": now, "sealed": self._seal(key, request_id, details)}])
            session.execute(insert(RequestToken), [{
                "token_hash": token_hash(token), "request_id": request_id, "purpose": "verify",
                "expires_at": now + dt.timedelta(days=VERIFY_DAYS), "uses_left": 1, "used_at": None}])
            link = f"{self.ctx.public_url}/v1/requests/{request_id}/verify?token={token}"
            body = request_mail.text(cmd.language, "verify.body", type=request_mail.type_name(cmd.language, cmd.type),
                                     link=link, days=VERIFY_DAYS, id=request_id)
            self._mail(session, key, request_id, request_mail.mail(
                details["email"], cmd.language, "verify.subject", body,
                type=request_mail.type_name(cmd.language, cmd.type)), now)
            append_audit(session, "customer", "request.received", now, target=request_id,
                         details={"type": cmd.type, "due_at": timestamp(due)})
        log.info("request opened id=%s type=%s", request_id, cmd.type)
        return {"id": request_id, "status": "pending_verification", "due_at": as_json_time(due)}

    def _validate(self, cmd: RequestCommand) -> dict[str, Any]:
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

    # --- verification ---------------------------------------------------------------

    def verify(self, request_id: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """Follow the mailed link: the request is verified and its work planned and started.
        Returns what the customer may see of it."""
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            self._use_token(session, request, token, "verify", now)
            if request.status != "pending_verification":
                raise Conflict(f"the request is {request.status}", {"status": [request.status]},
                               code="not_pending_verification")
            subject = SubjectRepository(session).by_email_index(request.email_index)
            request.subject_id = subject.id if subject is not None and subject.wrapped_key is not None else None
            request.verified_at = now
            self._move(session, request, "verified", "customer", now)
            systems = self._plan_tasks(session, request, now)
            self._move(session, request, "in_progress", LOCAL_SYSTEM, now, {"systems": systems})
        self._advance(request_id, now)
        view = self._view(self._request(self.session(), request_id))
        return {k: view[k] for k in CUSTOMER_VIEW}  # no history, no subject id

    def _advance(self, request_id: str, now: dt.datetime) -> bool:
        """Run the local work and close the request if it is ready. A fault leaves the request
        in progress for the scheduler to retry; it never undoes what is already committed."""
        try:
            self.run_local(request_id, now)
            return self.complete_if_ready(request_id, now)
        except Exception as exc:
            log.error("request %s: could not advance (%s); the scheduler retries", request_id, type(exc).__name__)
            return False

    def _use_token(self, session: Session, request: DataRequest, token: str, purpose: str,
                   now: dt.datetime) -> RequestToken:
        row = session.get(RequestToken, token_hash(token), with_for_update=True) if token else None
        if row is None or row.request_id != request.id or row.purpose != purpose:
            raise NotFound("unknown or wrong link for this request", {"token": ["unknown"]}, code="invalid_token")
        if row.uses_left <= 0:
            raise Conflict("this link was already used", {"token": ["already used"]}, code="token_used")
        if row.expires_at <= now:
            raise Gone("this link has expired", {"token": ["expired"]}, code="token_expired")
        row.uses_left -= 1
        row.used_at = now
        return row

    def _plan_tasks(self, session: Session, request: DataRequest, now: dt.datetime) -> list[str]:
        operation = CONNECTOR_OPERATION[request.type]
        systems = [LOCAL_SYSTEM] + [c.name for c in self.ctx.policy.connectors if operation in c.operations]
        session.execute(insert(RequestTask), [{
            "id": str(uuid.uuid4()), "request_id": request.id, "system": name,
            "operation": request.type if name == LOCAL_SYSTEM else operation, "status": "pending",
            "attempts": 0, "last_error": None, "next_attempt_at": now, "result": None, "created_at": now,
            "updated_at": now} for name in systems])
        return systems

    # --- this service's own work ------------------------------------------------------

    def run_local(self, request_id: str, now: dt.datetime) -> str | None:
        """Do this service's share of a verified request; returns the task's outcome."""
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            task = session.scalars(select(RequestTask).where(RequestTask.request_id == request_id,
                                                             RequestTask.system == LOCAL_SYSTEM)).one_or_none()
            if task is None or task.status in TASK_DONE:
                return task.status if task else None
            subject = SubjectRepository(session).get(request.subject_id) if request.subject_id else None
            details = self._details(request)
            task.attempts += 1
            task.updated_at = now
            if subject is None or subject.wrapped_key is None:
                task.status, task.last_error = "skipped", "no personal data held for this e-mail address"
                summary: dict[str, Any] = {"data": False}
            else:
                try:
                    with session.begin_nested():
                        summary = self._local_work(session, request, subject, details, now)
                    task.status, task.last_error = "succeeded", None
                except Conflict as exc:  # e.g. a corrected e-mail that another subject has
                    task.status, task.last_error = "failed", exc.message[:500]
                    summary = {"error": exc.code}
                except Exception as exc:  # a fault, not an answer: retried by the scheduler, then failed
                    task.last_error = f"internal error ({type(exc).__name__})"
                    log.error("request %s: local work failed with %s (attempt %d)", request.id,
                              type(exc).__name__, task.attempts)
                    if task.attempts < LOCAL_ATTEMPTS:
                        return task.status
                    task.status, summary = "failed", {"error": "internal_error"}
            self._store_result(request, task, summary)
            append_audit(session, LOCAL_SYSTEM, "request.task", now, target=request.id,
                         details={"system": LOCAL_SYSTEM, "status": task.status})
            return task.status

    def _local_work(self, session: Session, request: DataRequest, subject: SubjectRecord, details: dict[str, Any],
                    now: dt.datetime) -> dict[str, Any]:
        if request.type == "erasure":
            return fulfilment.erase(session, self.ctx, subject, request, now)
        if request.type == "rectification":
            return fulfilment.rectify(session, self.ctx, subject, request, details["changes"], now)
        if request.type == "restriction":
            return fulfilment.restrict(session, subject, request, True, now)
        if request.type == "objection":
            return fulfilment.object_to(session, self.ctx, subject, request, details["purposes"], now)
        return {"data": True}  # access and portability: collected when the package is built

    def _store_result(self, request: DataRequest, task: RequestTask, summary: dict[str, Any]) -> None:
        key = self.ctx.crypto.request_key(request)
        task.result = self.ctx.crypto.encrypt_field(key, request.id, f"task/{task.id}", json.dumps(summary))

    def complete_if_ready(self, request_id: str, now: dt.datetime) -> bool:
        """Close a request whose every task has an outcome; build and mail what it asked for."""
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            if request.status != "in_progress":
                return False
            tasks = list(session.scalars(select(RequestTask).where(RequestTask.request_id == request_id)))
            if any(t.status not in TASK_DONE for t in tasks):
                return False
            failed = any(t.status == "failed" for t in tasks)
            key = self.ctx.crypto.request_key(request)
            results = {t.system: json.loads(self.ctx.crypto.decrypt_field(key, request.id, f"task/{t.id}", t.result))
                       for t in tasks if t.result is not None}
            local = results.get(LOCAL_SYSTEM, {})
            details = self._details(request)
            lang = request.language
            lines: list[str] = []
            if request.type in ("access", "portability") and local.get("data"):
                link = self._build_package(session, request, key, results, now)
                lines.append(request_mail.text(lang, "done.access", link=link, days=DOWNLOAD_DAYS, uses=DOWNLOAD_USES))
            elif not local.get("data", True):
                lines.append(request_mail.text(lang, "done.nodata"))
            elif request.type == "erasure":
                held = local.get("fields_held") or []
                lines.append(request_mail.text(lang, "done.erasure_held", held=", ".join(held)) if held
                             else request_mail.text(lang, "done.erasure"))
            elif request.type == "rectification" and "fields" in local:
                lines.append(request_mail.text(lang, "done.rectification",
                                               fields=", ".join(local["fields"] + local.get("not_stored", []))))
            elif request.type == "restriction":
                lines.append(request_mail.text(lang, "done.restriction"))
            elif request.type == "objection":
                lines.append(request_mail.text(lang, "done.objection", purposes=", ".join(details["purposes"])))
            if failed:
                lines.append(request_mail.text(lang, "done.partial"))
            status = "partially_completed" if failed else "completed"
            request.completed_at = now
            self._move(session, request, status, LOCAL_SYSTEM, now,
                       {"tasks": {t.system: t.status for t in tasks}})
            body = "\n\n".join(lines) + request_mail.text(lang, "done.footer", id=request.id)
            self._mail(session, key, request.id, request_mail.mail(details["email"], lang, "done.subject", body), now)
            return True

    def _build_package(self, session: Session, request: DataRequest, key: bytes, results: dict[str, Any],
                       now: dt.datetime) -> str:
        if self.packager is None:
            raise RuntimeError("RequestService needs a packager to answer access requests")
        subject = SubjectRepository(session).get(request.subject_id) if request.subject_id else None
        systems = {name: result.get("data", result) for name, result in results.items() if name != LOCAL_SYSTEM}
        data = fulfilment.collect(session, self.ctx, subject, request, request.type == "portability", systems)
        package_id = str(uuid.uuid4())
        file_key = self.ctx.crypto.derived_key(key, f"package|{package_id}")
        info = {"id": request.id, "type": request.type, "received_at": as_json_time(request.received_at),
                "due_at": as_json_time(request.extended_until or request.due_at)}
        file_name, size = self.packager.build(package_id, file_key, request.type, request.language, info, data, now)
        session.add(ExportPackage(id=package_id, request_id=request.id, kind=request.type, file_name=file_name,
                                  size=size, created_at=now, expires_at=now + dt.timedelta(days=DOWNLOAD_DAYS)))
        token = secrets.token_urlsafe(32)
        session.add(RequestToken(token_hash=token_hash(token), request_id=request.id, purpose="download",
                                 expires_at=now + dt.timedelta(days=DOWNLOAD_DAYS), uses_left=DOWNLOAD_USES))
        append_audit(session, LOCAL_SYSTEM, "request.package_built", now, target=request.id,
                     details={"package": package_id, "size": size})
        return f"{self.ctx.public_url}/v1/requests/{request.id}/download?token={token}"

    # --- officers -------------------------------------------------------------------

    def extend(self, request_id: str, days: int, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Art. 12(3): one extension of up to two months, while the first month runs, mailed with its reason."""
        reason = _reason(reason)
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            if request.status not in TRANSITIONS:
                raise Conflict(f"the request is {request.status}", {"status": [request.status]}, code="request_closed")
            if request.extended_until is not None:
                raise Conflict("the request was already extended once", {"days": ["already extended"]},
                               code="already_extended")
            if now > request.due_at:
                raise Conflict("an extension must be given within the first month", {"days": ["too late"]},
                               code="deadline_passed")
            request.extended_until = extended(request.due_at, days, self.tz)
            request.updated_at = now
            key = self.ctx.crypto.request_key(request)
            details = self._details(request)
            details["extension_reason"] = reason
            request.sealed = self._seal(key, request.id, details)
            due_local = request.extended_until.astimezone(self.tz).date().isoformat()
            lang = request.language
            body = request_mail.text(lang, "extended.body", type=request_mail.type_name(lang, request.type),
                                     reason=reason, due=due_local, id=request.id)
            self._mail(session, key, request.id, request_mail.mail(details["email"], lang, "extended.subject", body),
                       now)
            append_audit(session, actor, "request.extended", now, target=request.id,
                         details={"days": days, "extended_until": timestamp(request.extended_until)})
        return self.get(request_id)

    def reject(self, request_id: str, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Refuse a request (Art. 12(4)): mailed with its reason and the right to complain."""
        reason = _reason(reason)
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            details = self._details(request)
            details["rejection_reason"] = reason
            key = self.ctx.crypto.request_key(request)
            request.sealed = self._seal(key, request.id, details)
            request.completed_at = now
            self._move(session, request, "rejected", actor, now)
            authority = self.ctx.policy.controller.get("supervisory_authority") or {}
            lang = request.language
            body = request_mail.text(lang, "rejected.body", type=request_mail.type_name(lang, request.type),
                                     reason=reason, authority=authority.get("name", ""), url=authority.get("url", ""),
                                     id=request.id)
            self._mail(session, key, request.id, request_mail.mail(details["email"], lang, "rejected.subject", body),
                       now)
        return self.get(request_id)

    def lift_restriction(self, request_id: str, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Art. 18(3): the customer is told before the restriction is lifted.

        The notice goes into the outbox in the transaction that lifts it, ahead of it.
        """
        reason = _reason(reason)
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            if request.type != "restriction" or request.status not in ("completed", "partially_completed"):
                raise Conflict("only a completed restriction request can be lifted", {"type": [request.type]},
                               code="not_a_restriction")
            subject = SubjectRepository(session).get(request.subject_id) if request.subject_id else None
            if subject is None or not subject.restricted:
                raise Conflict("no restriction stands for this request", {"restricted": ["false"]},
                               code="not_restricted")
            key = self.ctx.crypto.request_key(request)
            details = self._details(request)
            lang = request.language
            body = request_mail.text(lang, "lift.body", reason=reason, id=request.id)
            self._mail(session, key, request.id, request_mail.mail(details["email"], lang, "lift.subject", body), now)
            append_audit(session, actor, "request.restriction_lift_notified", now, target=request.id)
            fulfilment.restrict(session, subject, request, False, now, actor=actor)
        return self.get(request_id)

    # --- packages -------------------------------------------------------------------

    def package_for_officer(self, request_id: str, actor: str, now: dt.datetime) -> tuple[str, Iterator[bytes]]:
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            package = self._package(session, request, now)
            append_audit(session, actor, "request.package_downloaded", now, target=request.id,
                         details={"package": package.id, "by": "officer"})
            return self._stream(request, package)

    def download(self, request_id: str, token: str, now: dt.datetime) -> tuple[str, Iterator[bytes]]:
        """The customer's expiring link, which works a limited number of times."""
        with self.database.unit_of_work() as session:
            request = self._request(session, request_id, lock=True)
            row = self._use_token(session, request, token, "download", now)
            package = self._package(session, request, now)
            append_audit(session, "customer", "request.package_downloaded", now, target=request.id,
                         details={"package": package.id, "by": "customer", "uses_left": row.uses_left})
            return self._stream(request, package)

    def _package(self, session: Session, request: DataRequest, now: dt.datetime) -> ExportPackage:
        package = session.scalars(select(ExportPackage).where(ExportPackage.request_id == request.id)).one_or_none()
        if package is None:
            raise NotFound("this request has no package", {"package": ["none"]})
        if package.deleted_at is not None or package.expires_at <= now:
            raise Gone("the package has expired and was deleted", {"package": ["expired"]})
        return package

    def _stream(self, request: DataRequest, package: ExportPackage) -> tuple[str, Iterator[bytes]]:
        assert self.packager is not None
        key = self.ctx.crypto.derived_key(self.ctx.crypto.request_key(request), f"package|{package.id}")
        return f"{package.kind}-{request.id}.zip", self.packager.open(package.file_name, key)

    # --- reading --------------------------------------------------------------------

    def get(self, request_id: str) -> dict[str, Any]:
        """One request with each system's status and its history (from the audit log)."""
        request = self._request(self.session(), request_id)
        tasks = self.session.scalars(select(RequestTask).where(RequestTask.request_id == request_id)
                                     .order_by(RequestTask.created_at, RequestTask.system))
        history = LedgerRepository(self.session).audit_of(request_id)
        view = self._view(request)
        view["systems"] = [{"name": t.system, "status": t.status, "attempts": t.attempts, "last_error": t.last_error}
                           for t in tasks]
        view["history"] = [{"at": as_json_time(e.at), "action": e.action, "actor": e.actor,
                            "details": json.loads(e.details)} for e in history]
        details = self._details(request) if request.wrapped_key is not None else {}
        for name in ("extension_reason", "rejection_reason"):
            if name in details:
                view[name] = details[name]
        return view

    def queue(self, now: dt.datetime, status: str | None = None, type_: str | None = None,
              overdue: bool | None = None, due_before: dt.datetime | None = None, limit: int = 500
              ) -> list[dict[str, Any]]:
        """The officer's queue, soonest deadline first."""
        deadline = func.coalesce(DataRequest.extended_until, DataRequest.due_at)
        late = DataRequest.status.in_(list(TRANSITIONS)) & (deadline < now)
        query = select(DataRequest)
        if status is not None:
            query = query.where(DataRequest.status == status)
        if type_ is not None:
            query = query.where(DataRequest.type == type_)
        if overdue is not None:
            query = query.where(late if overdue else ~late)
        if due_before is not None:
            query = query.where(deadline < due_before)
        rows = self.session.scalars(query.order_by(deadline, DataRequest.received_at, DataRequest.id).limit(limit))
        return [{**self._view(r), "overdue": r.status in TRANSITIONS and (r.extended_until or r.due_at) < now}
                for r in rows]

    def _view(self, request: DataRequest) -> dict[str, Any]:
        deadline = request.extended_until or request.due_at
        return {"id": request.id, "type": request.type, "status": request.status,
                "received_at": as_json_time(request.received_at), "due_at": as_json_time(request.due_at),
                "extended_until": as_json_time(request.extended_until), "deadline": as_json_time(deadline),
                "verified_at": as_json_time(request.verified_at), "completed_at": as_json_time(request.completed_at),
                "subject_id": request.subject_id, "language": request.language}

    # --- scheduled ------------------------------------------------------------------

    def expire_unverified(self, now: dt.datetime) -> int:
        """Requests whose verification link ran out without use become ``expired``."""
        cutoff = now - dt.timedelta(days=VERIFY_DAYS)
        ids = list(self.session.scalars(select(DataRequest.id).where(
            DataRequest.status == "pending_verification", DataRequest.received_at <= cutoff)))
        self.session.rollback()
        for request_id in ids:
            with self.database.unit_of_work() as session:
                request = self._request(session, request_id, lock=True)
                if request.status == "pending_verification":
                    self._move(session, request, "expired", LOCAL_SYSTEM, now)
        return len(ids)

    def process_open(self, now: dt.datetime) -> int:
        """Run any local task left pending (a crash between verify and work) and close ready requests."""
        ids = list(self.session.scalars(select(DataRequest.id).where(DataRequest.status == "in_progress")))
        self.session.rollback()
        closed = 0
        for request_id in ids:
            closed += self._advance(request_id, now)
        return closed

    def forget_closed(self, now: dt.datetime, after: dt.timedelta = DETAILS_KEPT) -> int:
        """Destroy the key of requests closed longer than ``after`` ago: the address, changes
        and answers they held become unreadable; the request's dates, status and audit trail
        stay as proof that it was handled."""
        cutoff = now - after
        closed = [s for s in STATUSES if s not in TRANSITIONS]
        ids = list(self.session.scalars(select(DataRequest.id).where(
            DataRequest.status.in_(closed), DataRequest.wrapped_key.is_not(None),
            func.coalesce(DataRequest.completed_at, DataRequest.updated_at) <= cutoff)))
        self.session.rollback()
        for request_id in ids:
            with self.database.unit_of_work() as session:
                request = self._request(session, request_id, lock=True)
                request.wrapped_key = request.master_key_id = request.sealed = None
                session.execute(update(RequestTask).where(RequestTask.request_id == request_id).values(result=None))
                append_audit(session, LOCAL_SYSTEM, "request.details_destroyed", now, target=request_id)
        return len(ids)

    def release_legal_holds(self, now: dt.datetime) -> dict[str, int]:
        """Erase what erasures kept for a legal hold once the hold has ended, and destroy its keys."""
        with self.database.unit_of_work() as session:
            return fulfilment.release_expired_holds(session, now)

    def purge_packages(self, now: dt.datetime) -> int:
        """Delete the files of packages past their expiry."""
        rows = list(self.session.scalars(select(ExportPackage).where(
            ExportPackage.expires_at <= now, ExportPackage.deleted_at.is_(None))))
        self.session.rollback()
        for package in rows:
            if self.packager is not None:
                self.packager.delete(package.file_name)
            with self.database.unit_of_work() as session:
                live = session.get(ExportPackage, package.id)
                if live is not None:
                    live.deleted_at = now
                    append_audit(session, LOCAL_SYSTEM, "request.package_deleted", now, target=live.request_id,
                                 details={"package": live.id})
        return len(rows)

    # --- helpers --------------------------------------------------------------------

    def _request(self, session: Session, request_id: str, lock: bool = False) -> DataRequest:
        """The request; with ``lock``, its row is locked for this transaction (PostgreSQL), so
        two clicks, or a click and the scheduler, move it one at a time (SQLite writers are
        serialised already)."""
        try:
            uuid.UUID(request_id)
        except ValueError:
            raise NotFound(f"request '{request_id[:64]}' not found") from None
        request = session.get(DataRequest, request_id, with_for_update=lock)
        if request is None:
            raise NotFound(f"request '{request_id}' not found")
        return request

    def _move(self, session: Session, request: DataRequest, status: str, actor: str, now: dt.datetime,
              details: dict[str, Any] | None = None) -> None:
        if status not in TRANSITIONS.get(request.status, ()):
            raise Conflict(f"a request that is {request.status} cannot become {status}",
                           {"status": [request.status]}, code="invalid_transition")
        previous, request.status, request.updated_at = request.status, status, now
        append_audit(session, actor, f"request.{status}", now, target=request.id,
                     details={"from": previous, **(details or {})})

    def _seal(self, key: bytes, request_id: str, details: dict[str, Any]) -> bytes:
        return self.ctx.crypto.encrypt_field(key, request_id, "details", json.dumps(details, sort_keys=True))

    def _details(self, request: DataRequest) -> dict[str, Any]:
        key = self.ctx.crypto.request_key(request)
        assert request.sealed is not None
        details: dict[str, Any] = json.loads(self.ctx.crypto.decrypt_field(key, request.id, "details", request.sealed))
        return details

    def _mail(self, session: Session, key: bytes, request_id: str, mail: OutgoingMail, now: dt.datetime) -> None:
        OutboxRepository(session).add([sealed_mail(self.ctx.crypto, key, request_id, mail, now, for_request=True)])


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput.field("reason", "must not be empty")
    if len(reason) > MAX_REASON:
        raise InvalidInput.field("reason", f"is longer than {MAX_REASON} characters")
    return reason
