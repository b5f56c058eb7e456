"""Planning tasks, in the transaction of the change that causes them.

A verified request plans one task per connected system whose operations cover it; a
consent withdrawal or expiry plans one ``consent`` task per system that takes consent.
Each task carries whom to look for (the e-mail address, the subject id) and what to
change, sealed under a key of its own: the task still knows whom to ask for after an
erasure has destroyed the subject's key, and nothing of the person outlives the task
(the key goes when it succeeds or is skipped).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privacy.connectors.base import TaskCall
from privacy.connectors.registry import CONNECTOR_CLASSES
from privacy.context import PrivacyContext
from privacy.crypto.keys import Crypto
from privacy.policy.file import ConnectorDef
from privacy.storage.repositories.subjects import SubjectRepository
from privacy.storage.repositories.tasks import LOCAL, TaskRecord, TaskRepository
from privacy.storage.statements import AnyTransaction

log = logging.getLogger(__name__)

# What a connected system is asked to do for each request type (docs/api.md, webhook protocol).
CONNECTOR_OPERATION = {"access": "access", "portability": "access", "erasure": "erasure",
                       "rectification": "rectification", "restriction": "restriction", "objection": "consent"}
PUSHED_STATUSES = ("withdrawn", "expired")  # consent changes every system must follow


def operations_of(definition: ConnectorDef) -> tuple[str, ...]:
    """What the system is asked to do: the policy's operations its type supports."""
    cls = CONNECTOR_CLASSES.get(definition.type)
    supported = cls.supported if cls is not None else frozenset()
    return tuple(op for op in definition.operations if op in supported)


def systems_for(connectors: Iterable[ConnectorDef], operation: str) -> list[ConnectorDef]:
    return [c for c in connectors if operation in operations_of(c)]


def deadline_of(definition: ConnectorDef, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(hours=float(definition.retry.get("deadline_hours", 72)))


def sealed_task(crypto: Crypto, definition: ConnectorDef, operation: str, payload: Mapping[str, Any],
                now: dt.datetime, request_id: str | None = None, subject_id: str | None = None) -> TaskRecord:
    """A pending task for ``definition``'s system with ``payload`` sealed under its own key."""
    task_id = str(uuid.uuid4())
    key, wrapped = crypto.new_task_key(task_id)
    sealed = crypto.encrypt_field(key, task_id, "payload", json.dumps(dict(payload), sort_keys=True))
    return TaskRecord(id=task_id, request_id=request_id, system=definition.name, operation=operation,
                      status="pending", attempts=0, last_error=None, next_attempt_at=now, result=None,
                      created_at=now, updated_at=now, subject_id=subject_id,
                      deadline_at=deadline_of(definition, now), wrapped_key=wrapped,
                      master_key_id=crypto.master_key_id, payload=sealed)


def open_call(crypto: Crypto, task: TaskRecord) -> TaskCall:
    """The :class:`TaskCall` a task's sealed payload describes (``KeyShredded`` once its key is gone)."""
    key = crypto.task_key(task)
    payload = json.loads(crypto.decrypt_field(key, task.id, "payload", task.payload or b""))
    return TaskCall(id=task.id, operation=task.operation, email=payload.get("email", ""),
                    subject_id=task.subject_id, request_id=task.request_id,
                    changes=payload.get("changes") or {}, purposes=payload.get("purposes") or {})


def plan_request(tx: AnyTransaction, ctx: PrivacyContext, request_id: str, request_type: str,
                 subject_id: str | None, details: Mapping[str, Any], now: dt.datetime,
                 due_at: dt.datetime | None = None) -> list[str]:
    """This service's own task and one per connected system that takes part in the
    request; returns the systems' names (this service first). A manual system's person
    has at least until the request is due (``due_at``)."""
    operation = CONNECTOR_OPERATION[request_type]
    payload = {"email": details.get("email", ""), "changes": details.get("changes") or {},
               "purposes": {p: "withdrawn" for p in details.get("purposes") or []}}
    local = TaskRecord(id=str(uuid.uuid4()), request_id=request_id, system=LOCAL, operation=request_type,
                       status="pending", attempts=0, last_error=None, next_attempt_at=now, result=None,
                       created_at=now, updated_at=now, subject_id=subject_id)
    tasks = [local]
    for definition in systems_for(ctx.policy.connectors, operation):
        task = sealed_task(ctx.crypto, definition, operation, payload, now, request_id, subject_id)
        if definition.type == "manual" and due_at is not None and task.deadline_at is not None:
            task.deadline_at = max(task.deadline_at, due_at)
        tasks.append(task)
    TaskRepository(tx).add(tasks)
    return [t.system for t in tasks]


@dataclass(frozen=True)
class ConsentFanout:
    """Plans the ``consent`` tasks of withdrawals and expiries (passed to
    :func:`privacy.consent.changes.move` by every caller that may withdraw)."""

    crypto: Crypto
    systems: tuple[ConnectorDef, ...]

    @classmethod
    def of(cls, ctx: PrivacyContext) -> ConsentFanout:
        return cls(ctx.crypto, tuple(systems_for(ctx.policy.connectors, "consent")))

    def changed(self, tx: AnyTransaction, subject_id: str, purposes: Mapping[str, str], now: dt.datetime) -> int:
        """Plan, in ``tx``, a task per consent-taking system that holds any of ``purposes``
        (their new status by code); returns how many. Only withdrawals and expiries are pushed."""
        tasks = self.tasks(tx, subject_id, purposes, now)
        TaskRepository(tx).add(tasks)
        return len(tasks)

    def tasks(self, tx: AnyTransaction, subject_id: str, purposes: Mapping[str, str], now: dt.datetime
              ) -> list[TaskRecord]:
        """The tasks :meth:`changed` plans, sealed but not stored (``tx`` is only read)."""
        pushed = {p: s for p, s in purposes.items() if s in PUSHED_STATUSES}
        targets = [c for c in self.systems if any(holds_purpose(c, p) for p in pushed)]
        if not targets:
            return []
        email = self._email(tx, subject_id)
        if email is None:
            log.info("consent change of subject %s not pushed: no e-mail address held", subject_id)
            return []
        return [sealed_task(self.crypto, c, "consent", {"email": email, "purposes": {
            p: s for p, s in pushed.items() if holds_purpose(c, p)}}, now, subject_id=subject_id) for c in targets]

    def _email(self, tx: AnyTransaction, subject_id: str) -> str | None:
        subjects = SubjectRepository(tx)
        subject = subjects.get(subject_id)
        if subject is None or subject.wrapped_key is None:
            return None
        sealed = subjects.fields(subject_id).get("email")
        if sealed is None:
            return None
        return self.crypto.decrypt_field(self.crypto.data_key(subject), subject_id, "email", sealed)


def holds_purpose(definition: ConnectorDef, purpose: str) -> bool:
    """Whether the system takes part in ``purpose`` (its ``purposes`` setting; every one by default)."""
    purposes = definition.settings.get("purposes")
    return not purposes or purpose in purposes
