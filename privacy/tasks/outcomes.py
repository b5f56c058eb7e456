"""What a try at a connected system's task makes of it, written while the lease is held.

Success (with what the system really did), a skip (the system cannot act for this
person), a retry later (timeouts, 408, 429, 5xx: exponential backoff with jitter between
the connector's ``initial_delay_s`` and ``max_delay_s``, or the system's ``Retry-After``),
a failure (any other answer, or a deadline that passes before the next try), or waiting
for a person (a manual system). Every try is a ``task_attempts`` row and every change of
state an audit entry.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import PrivacyContext
from privacy.crypto.keys import CryptoError
from privacy.ledger import append_audit
from privacy.policy.file import ConnectorDef
from privacy.storage.repositories.requests import RequestRepository
from privacy.storage.repositories.tasks import TaskRecord, TaskRepository

ACTOR = "scheduler"


@dataclass(frozen=True)
class Attempt:
    """The end of one try: ``kind`` is succeeded | skipped | retry | failed | waiting."""
    kind: str
    started_at: dt.datetime
    duration_ms: int
    outcome: str | None = None
    data: dict[str, Any] | None = None
    reason: str | None = None
    http_status: int | None = None
    excerpt: str | None = None
    retry_after: float | None = None
    mail_to: str | None = None  # waiting: the system's owner, who is asked to act
    instructions: str | None = None


def backoff(retry: dict[str, float], attempts: int, retry_after: float | None, rng: random.Random | None = None
            ) -> float:
    """Seconds before the next try: the system's ``Retry-After`` when it gave one, else a
    random wait between ``initial_delay_s`` and an exponentially growing ceiling capped at
    ``max_delay_s`` (jitter keeps retries of many tasks from arriving together)."""
    if retry_after is not None:
        return max(float(retry_after), 0.0)
    initial = float(retry.get("initial_delay_s", 30))
    ceiling = min(float(retry.get("max_delay_s", 3600)), initial * 2 ** max(attempts - 1, 0))
    return (rng or random).uniform(initial, max(initial, ceiling))


def forget_payload(task: TaskRecord) -> None:
    """Destroy whom the task looked for: its key and its sealed payload."""
    task.wrapped_key = task.master_key_id = task.payload = None


def record(session: Session, ctx: PrivacyContext, task: TaskRecord, definition: ConnectorDef, attempt: Attempt,
           now: dt.datetime) -> str:
    """Apply ``attempt`` to the leased ``task`` and log it; returns the task's new status."""
    kind = attempt.kind
    if kind == "retry":
        delay = backoff(definition.retry, task.attempts, attempt.retry_after)
        at = now + dt.timedelta(seconds=delay)
        if task.deadline_at is not None and at >= task.deadline_at:
            kind = "failed"
            attempt = _gave_up(attempt, task)
        else:
            task.status, task.next_attempt_at, task.last_error = "pending", at, attempt.reason
    if kind == "succeeded":
        task.status, task.outcome, task.last_error = "succeeded", attempt.outcome, None
        _store_result(session, ctx, task, {"status": "succeeded", "outcome": attempt.outcome, "data": attempt.data})
        forget_payload(task)
    elif kind == "skipped":
        task.status, task.last_error = "skipped", attempt.reason
        _store_result(session, ctx, task, {"status": "skipped", "reason": attempt.reason})
        forget_payload(task)
    elif kind == "failed":  # the key stays: an officer may retry the system
        task.status, task.last_error = "failed", attempt.reason
        _store_result(session, ctx, task, {"status": "failed", "error": attempt.reason})
    elif kind == "waiting":  # a person is asked; the lease lasts until the deadline
        task.lease_owner, task.lease_until = "manual", task.deadline_at
    if kind != "waiting":
        task.lease_owner = task.lease_until = None
    if task.status in ("succeeded", "skipped", "failed"):
        task.finished_at = now
    repo = TaskRepository(session)
    repo.save(task, now)
    repo.add_attempt(task, attempt.started_at, attempt.duration_ms, kind, attempt.http_status, attempt.reason,
                     attempt.excerpt)
    audit(session, task, f"task.{kind}", now, ACTOR, {"attempt": task.attempts, "outcome": task.outcome,
                                                     "http_status": attempt.http_status,
                                                     "next_attempt_at": task.next_attempt_at.isoformat()
                                                     if kind == "retry" and task.next_attempt_at else None})
    return task.status


def _gave_up(attempt: Attempt, task: TaskRecord) -> Attempt:
    reason = f"gave up: the deadline passes before the next try ({attempt.reason})"
    return Attempt("failed", attempt.started_at, attempt.duration_ms, reason=reason[:500],
                   http_status=attempt.http_status, excerpt=attempt.excerpt)


def _store_result(session: Session, ctx: PrivacyContext, task: TaskRecord, result: dict[str, Any]) -> None:
    """A request's task keeps its answer (an access answer goes into the package), sealed
    under the request's key; a consent task has no request and keeps none."""
    if task.request_id is None:
        return
    request = RequestRepository(session).get(task.request_id)
    if request is None or request.wrapped_key is None:
        return
    try:
        key = ctx.crypto.request_key(request)
    except CryptoError:
        return
    task.result = ctx.crypto.encrypt_field(key, task.request_id, f"task/{task.id}",
                                           json.dumps({k: v for k, v in result.items() if v is not None}))


def audit(session: Session, task: TaskRecord, action: str, now: dt.datetime, actor: str,
          details: dict[str, Any] | None = None) -> None:
    """An audit entry for a task's change: the system and operation, never the person."""
    entry = {"task": task.id, "system": task.system, "operation": task.operation, "status": task.status,
             **{k: v for k, v in (details or {}).items() if v is not None}}
    if task.request_id:
        entry["request"] = task.request_id
    append_audit(session, actor, action, now, target=task.request_id or task.subject_id, details=entry)
