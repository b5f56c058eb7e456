"""A verified request's work, from planning to answer.

Verification plans one task per system: this service's own (``privacy-service``) and each
connected system whose operations cover the request (docs/api.md, webhook protocol). This
service's task runs at once and is retried by the scheduler after a fault; the request
closes (``completed``, or ``partially_completed`` if a task failed) when every task has an
outcome, and the customer is mailed the answer (with the download link of an access or
portability package). Unverified requests expire here too. The legal moves are in
``states``.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import Packager, PrivacyContext
from privacy.errors import Conflict
from privacy.languages import in_language
from privacy.ledger import append_audit
from privacy.policy.catalogue import load_catalogue
from privacy.requests import fulfilment, records
from privacy.requests import mail as request_mail
from privacy.requests.packages import PackageService
from privacy.requests.receipts import erasure_receipt, systems_lines
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.states import TASK_DONE, move
from privacy.requests.tokens import DOWNLOAD_DAYS, DOWNLOAD_USES, VERIFY_DAYS
from privacy.storage.repositories.requests import RequestRecord, RequestRepository
from privacy.storage.repositories.subjects import SubjectRecord, SubjectRepository
from privacy.storage.repositories.tasks import TaskRecord, TaskRepository
from privacy.tasks.planning import plan_request

log = logging.getLogger(__name__)

LOCAL_ATTEMPTS = 5  # this service's own work is retried by the scheduler before it counts as failed


class WorkflowService:
    def __init__(self, ctx: PrivacyContext, packager: Packager | None = None) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.session = ctx.database.session
        self.packages = PackageService(ctx, packager)

    def plan_tasks(self, session: Session, request: RequestRecord, now: dt.datetime) -> list[str]:
        """One pending task per system that takes part in ``request``; their names."""
        details = records.open_details(self.ctx.crypto, request)
        return plan_request(session, self.ctx, request.id, request.type, request.subject_id, details, now,
                            request.extended_until or request.due_at)

    def advance(self, request_id: str, now: dt.datetime) -> bool:
        """Run the local work and close the request if it is ready. A fault leaves the request
        in progress for the scheduler to retry; it never undoes what is already committed."""
        try:
            self.run_local(request_id, now)
            return self.complete_if_ready(request_id, now)
        except Exception as exc:
            log.error("request %s: could not advance (%s); the scheduler retries", request_id, type(exc).__name__)
            return False

    # --- this service's own task ------------------------------------------------------

    def run_local(self, request_id: str, now: dt.datetime) -> str | None:
        """Do this service's share of a verified request; returns the task's outcome."""
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            tasks = TaskRepository(session)
            task = tasks.of_request_system(request_id, LOCAL_SYSTEM)
            if task is None or task.status in TASK_DONE:
                return task.status if task else None
            subject = SubjectRepository(session).get(request.subject_id) if request.subject_id else None
            details = records.open_details(self.ctx.crypto, request)
            task.attempts += 1
            if subject is None or subject.wrapped_key is None:
                task.status, task.last_error = "skipped", "no personal data held for this e-mail address"
                summary = {"data": False}
            else:
                attempt = self._attempt(session, request, task, subject, details, now)
                if attempt is None:  # a fault, to be retried
                    tasks.save(task, now)
                    return task.status
                summary = attempt
            self._store_result(request, task, summary)
            task.outcome = "done" if task.status == "succeeded" else None
            task.finished_at = now
            tasks.save(task, now)
            append_audit(session, LOCAL_SYSTEM, "request.task", now, target=request.id,
                         details={"system": LOCAL_SYSTEM, "status": task.status})
            return task.status

    def _attempt(self, session: Session, request: RequestRecord, task: TaskRecord, subject: SubjectRecord,
                 details: dict[str, Any], now: dt.datetime) -> dict[str, Any] | None:
        """One try at the local work, in a savepoint: its summary and outcome on ``task``, or
        None after a fault that the scheduler retries (until ``LOCAL_ATTEMPTS``, then failed)."""
        try:
            with session.begin_nested():
                summary = self._local_work(session, request, subject, details, now)
            task.status, task.last_error = "succeeded", None
            return summary
        except Conflict as exc:  # e.g. a corrected e-mail that another subject has
            task.status, task.last_error = "failed", exc.message[:500]
            return {"error": exc.code}
        except Exception as exc:  # a fault, not an answer: retried by the scheduler, then failed
            task.last_error = f"internal error ({type(exc).__name__})"
            log.error("request %s: local work failed with %s (attempt %d)", request.id,
                      type(exc).__name__, task.attempts)
            if task.attempts < LOCAL_ATTEMPTS:
                return None
            task.status = "failed"
            return {"error": "internal_error"}

    def _local_work(self, session: Session, request: RequestRecord, subject: SubjectRecord, details: dict[str, Any],
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

    def _store_result(self, request: RequestRecord, task: TaskRecord, summary: dict[str, Any]) -> None:
        key = self.ctx.crypto.request_key(request)
        task.result = self.ctx.crypto.encrypt_field(key, request.id, f"task/{task.id}", json.dumps(summary))

    # --- closing ------------------------------------------------------------------------

    def complete_if_ready(self, request_id: str, now: dt.datetime) -> bool:
        """Close a request whose every task has an outcome; build and mail what it asked for."""
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            if request.status != "in_progress":
                return False
            requests = RequestRepository(session)
            tasks = TaskRepository(session).of_request(request_id)
            if any(t.status not in TASK_DONE for t in tasks):
                return False
            failed = any(t.status == "failed" for t in tasks)
            key = self.ctx.crypto.request_key(request)
            results = {t.system: json.loads(self.ctx.crypto.decrypt_field(key, request.id, f"task/{t.id}", t.result))
                       for t in tasks if t.result is not None}
            local = results.get(LOCAL_SYSTEM, {})
            details = records.open_details(self.ctx.crypto, request)
            link = None
            if request.type in ("access", "portability") and local.get("data"):
                link = self.packages.build(session, request, key, results, now)
            extra: list[str] = []
            if len(tasks) > 1:  # connected systems took part: say what each did
                extra.append(request_mail.text(request.language, "done.systems", systems=systems_lines(tasks)))
            if request.type == "erasure" and local.get("data", True):
                claims, receipt = erasure_receipt(self.ctx, request, tasks, local, now)
                extra.append(request_mail.text(request.language, "done.receipt", receipt=receipt,
                                               keys=f"{self.ctx.public_url}/v1/receipts/keys"))
                append_audit(session, LOCAL_SYSTEM, "request.erasure_receipt", now, target=request.id,
                             details={"systems": len(claims["systems"]), "held": len(claims["held"])})
            body = _answer(request, local, details, failed, link, extra, self._words(request.language))
            requests.set_completed(request, now)
            move(session, request, "partially_completed" if failed else "completed", LOCAL_SYSTEM, now,
                 {"tasks": {t.system: t.status for t in tasks}})
            mail = request_mail.mail(details["email"], request.language, "done.subject", body)
            records.queue_mail(session, self.ctx.crypto, key, request.id, mail, now)
            return True

    def _words(self, language: str) -> _Words:
        policy, purposes = self.ctx.policy, load_catalogue(self.database).purposes

        def purpose(code: str) -> str:
            return in_language(purposes[code].name if code in purposes else None, language, code)

        return _Words(lambda name: policy.field_label(name, language), purpose)

    # --- scheduled ----------------------------------------------------------------------

    def process_open(self, now: dt.datetime) -> int:
        """Run any local task left pending (a crash between verify and work) and close ready requests."""
        ids = RequestRepository(self.session).ids_with_status("in_progress")
        self.session.rollback()
        closed = 0
        for request_id in ids:
            closed += self.advance(request_id, now)
        return closed

    def expire_unverified(self, now: dt.datetime) -> int:
        """Requests whose verification link ran out without use become ``expired``."""
        cutoff = now - dt.timedelta(days=VERIFY_DAYS)
        ids = RequestRepository(self.session).ids_received_before("pending_verification", cutoff)
        self.session.rollback()
        for request_id in ids:
            with self.database.unit_of_work() as session:
                request = records.load(session, request_id, lock=True)
                if request.status == "pending_verification":
                    move(session, request, "expired", LOCAL_SYSTEM, now)
        return len(ids)


@dataclass(frozen=True)
class _Words:
    """Fields and purposes as the customer reads them in the mail's language."""

    fields: Callable[[str], str]
    purposes: Callable[[str], str]

    def of_fields(self, names: list[str]) -> str:
        return ", ".join(self.fields(n) for n in names)

    def of_purposes(self, codes: list[str]) -> str:
        return ", ".join(self.purposes(c) for c in codes)


def _answer(request: RequestRecord, local: dict[str, Any], details: dict[str, Any], failed: bool,
            link: str | None, extra: list[str], words: _Words) -> str:
    """The closing mail's text: what was done (or the download link), by request type, then
    ``extra`` paragraphs (each system's outcome, the erasure receipt), then the request's id."""
    lang, text = request.language, request_mail.text
    lines: list[str] = []
    if link is not None:
        lines.append(text(lang, "done.access", link=link, days=DOWNLOAD_DAYS, uses=DOWNLOAD_USES))
    elif not local.get("data", True):
        lines.append(text(lang, "done.nodata"))
    elif request.type == "erasure":
        held = local.get("fields_held") or []
        lines.append(text(lang, "done.erasure_held", held=words.of_fields(held)) if held
                     else text(lang, "done.erasure"))
    elif request.type == "rectification" and "fields" in local:
        changed = local["fields"] + local.get("not_stored", [])
        lines.append(text(lang, "done.rectification", fields=words.of_fields(changed)))
    elif request.type == "restriction":
        lines.append(text(lang, "done.restriction"))
    elif request.type == "objection":
        lines.append(text(lang, "done.objection", purposes=words.of_purposes(details["purposes"])))
    if failed:
        lines.append(text(lang, "done.partial"))
    return "\n\n".join(lines + extra) + text(lang, "done.footer", id=request.id)
