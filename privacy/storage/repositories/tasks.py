"""Tasks for connected systems (``request_tasks``) and their attempts (``task_attempts``).

A task is one system's share of a request, or one consent change pushed to a system. A
scheduler process claims due tasks with a lease: on PostgreSQL the candidate rows are
locked ``FOR UPDATE SKIP LOCKED``, so processes on several machines never claim the same
task; on SQLite one process writes at a time. Whatever a claimed task becomes is written
only while its lease is still the claimer's (:meth:`TaskRepository.get_leased`), so a
process that lost its lease (it stalled, another took the task over) changes nothing.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, insert, or_, select, update

from privacy.storage.models import RequestTask, TaskAttempt
from privacy.storage.statements import AnyTransaction, as_transaction

_T = RequestTask.__table__
_A = TaskAttempt.__table__
LOCAL = "privacy-service"  # this service's own share of a request, run in-process

TASK_COLUMNS = (_T.c.id, _T.c.request_id, _T.c.system, _T.c.operation, _T.c.status, _T.c.attempts,
                _T.c.last_error, _T.c.next_attempt_at, _T.c.result, _T.c.created_at, _T.c.updated_at,
                _T.c.subject_id, _T.c.outcome, _T.c.deadline_at, _T.c.lease_owner, _T.c.lease_until,
                _T.c.wrapped_key, _T.c.master_key_id, _T.c.payload, _T.c.finished_at)
MUTABLE = ("status", "attempts", "last_error", "next_attempt_at", "result", "outcome", "deadline_at",
           "lease_owner", "lease_until", "wrapped_key", "master_key_id", "payload", "finished_at")
TASKS_OF = select(*TASK_COLUMNS).where(_T.c.request_id == bindparam("rid")).order_by(_T.c.created_at, _T.c.system)
TASK_OF_SYSTEM = select(*TASK_COLUMNS).where(_T.c.request_id == bindparam("rid"), _T.c.system == bindparam("system"))
GET = select(*TASK_COLUMNS).where(_T.c.id == bindparam("tid"))
LEASED = GET.where(_T.c.lease_owner == bindparam("owner"), _T.c.status == "in_progress").with_for_update()
INSERT = insert(_T)
SAVE = update(_T).where(_T.c.id == bindparam("b_id")).values(
    updated_at=bindparam("b_now"), **{c: bindparam(f"b_{c}") for c in MUTABLE})
# Due: pending and its time has come, or claimed by a process whose lease has run out.
_DUE = or_((_T.c.status == "pending") & (_T.c.next_attempt_at <= bindparam("now")),
           (_T.c.status == "in_progress") & (_T.c.lease_until < bindparam("now")))
DUE_IDS = select(_T.c.id).where(_T.c.system == bindparam("system"), _DUE).order_by(
    _T.c.next_attempt_at).limit(bindparam("n"))
CLAIM = update(_T).where(_T.c.id.in_(bindparam("ids", expanding=True))).values(
    status="in_progress", lease_owner=bindparam("owner"), lease_until=bindparam("until"),
    attempts=_T.c.attempts + 1, updated_at=bindparam("now"))
CLAIMED = select(*TASK_COLUMNS).where(_T.c.id.in_(bindparam("ids", expanding=True)))
IN_FLIGHT = select(_T.c.system, func.count()).where(
    _T.c.status == "in_progress", _T.c.lease_until >= bindparam("now")).group_by(_T.c.system)
ANY_DUE = select(_T.c.id).where(_DUE, _T.c.system != LOCAL).limit(1)
INSERT_ATTEMPT = insert(_A)
ATTEMPTS_OF = select(_A.c.started_at, _A.c.duration_ms, _A.c.result, _A.c.http_status, _A.c.error,
                     _A.c.excerpt).where(_A.c.task_id == bindparam("tid")).order_by(_A.c.id)
_WAITING = case((_T.c.status.in_(("pending", "in_progress")), 1), else_=0)
_FAILED = case((_T.c.status == "failed", 1), else_=0)
SUMMARY = select(_T.c.system, func.sum(_WAITING), func.sum(_FAILED)).where(_T.c.system != LOCAL).group_by(
    _T.c.system)
LAST_ATTEMPT = select(_A.c.system, func.max(_A.c.started_at)).where(
    _A.c.result == bindparam("result")).group_by(_A.c.system)
LAST_ERROR = select(_A.c.error).where(_A.c.system == bindparam("system"), _A.c.result.in_(("retry", "failed"))
                                      ).order_by(_A.c.id.desc()).limit(1)
OPEN_OF_SUBJECT = select(_T.c.id).where(
    _T.c.system == bindparam("system"), _T.c.subject_id == bindparam("sid"), _T.c.operation == bindparam("operation"),
    _T.c.status.in_(("pending", "in_progress"))).limit(1)
KEY_COLUMNS = (_T.c.id, _T.c.wrapped_key, _T.c.master_key_id)
KEYS_AFTER = select(*KEY_COLUMNS).where(_T.c.id > bindparam("after"), _T.c.wrapped_key.is_not(None)).order_by(
    _T.c.id).limit(bindparam("n"))
KEYS_UNDER = select(*KEY_COLUMNS).where(_T.c.master_key_id == bindparam("mk"))
REWRAP = update(_T).where(_T.c.id == bindparam("b_id")).values(wrapped_key=bindparam("b_wrapped"),
                                                                master_key_id=bindparam("b_mk"))
STALE_PAYLOADS = update(_T).where(_T.c.finished_at < bindparam("b_cutoff"), _T.c.wrapped_key.is_not(None)).values(
    wrapped_key=None, master_key_id=None, payload=None)


@dataclass(slots=True)
class TaskRecord:
    """One task. ``result`` is sealed under the request's key; ``payload`` under the task's
    own key (``wrapped_key``)."""

    id: str
    request_id: str | None
    system: str
    operation: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    result: bytes | None
    created_at: dt.datetime
    updated_at: dt.datetime
    subject_id: str | None = None
    outcome: str | None = None
    deadline_at: dt.datetime | None = None
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    wrapped_key: bytes | None = None
    master_key_id: str | None = None
    payload: bytes | None = None
    finished_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    started_at: dt.datetime
    duration_ms: int
    result: str
    http_status: int | None
    error: str | None
    excerpt: str | None


def _columns(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


class TaskRepository:
    """The statements of tasks and their attempts."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    def add(self, tasks: list[TaskRecord]) -> None:
        if tasks:
            self.tx.executemany(INSERT, [_columns(t) for t in tasks])

    def of_request(self, request_id: str) -> list[TaskRecord]:
        """The request's tasks: this service's first, then in the order they were planned,
        then by system name."""
        tasks = [TaskRecord(*r) for r in self.tx.all(TASKS_OF, {"rid": request_id})]
        return sorted(tasks, key=lambda t: t.system != LOCAL)

    def of_request_system(self, request_id: str, system: str) -> TaskRecord | None:
        row = self.tx.first(TASK_OF_SYSTEM, {"rid": request_id, "system": system})
        return None if row is None else TaskRecord(*row)

    def get(self, task_id: str) -> TaskRecord | None:
        row = self.tx.first(GET, {"tid": task_id})
        return None if row is None else TaskRecord(*row)

    def get_leased(self, task_id: str, owner: str) -> TaskRecord | None:
        """The task, locked, if ``owner`` still holds its lease; None if it lost it."""
        row = self.tx.first(LEASED, {"tid": task_id, "owner": owner})
        return None if row is None else TaskRecord(*row)

    def save(self, task: TaskRecord, now: dt.datetime) -> None:
        """Store every changeable column of ``task`` as changed at ``now``."""
        task.updated_at = now
        self.tx.execute(SAVE, {"b_id": task.id, "b_now": now, **{f"b_{c}": getattr(task, c) for c in MUTABLE}})

    # --- claiming ---------------------------------------------------------------------

    def in_flight(self, now: dt.datetime) -> dict[str, int]:
        """Per system, the tasks some process holds a live lease on."""
        return {system: count for system, count in self.tx.all(IN_FLIGHT, {"now": now})}

    def claim(self, system: str, limit: int, owner: str, until: dt.datetime, now: dt.datetime,
              skip_locked: bool) -> list[TaskRecord]:
        """Lease up to ``limit`` due tasks of ``system`` to ``owner`` until ``until``."""
        if limit <= 0:
            return []
        query = DUE_IDS.with_for_update(skip_locked=True) if skip_locked else DUE_IDS
        ids = [r.id for r in self.tx.all(query, {"system": system, "now": now, "n": limit})]
        if not ids:
            return []
        self.tx.execute(CLAIM, {"ids": ids, "owner": owner, "until": until, "now": now})
        return [TaskRecord(*r) for r in self.tx.all(CLAIMED, {"ids": ids})]

    def any_due(self, now: dt.datetime) -> bool:
        """Whether some connected system's task is due (a read: no write lock is taken)."""
        return self.tx.first(ANY_DUE, {"now": now}) is not None

    def has_open(self, system: str, subject_id: str, operation: str) -> bool:
        """Whether a task of ``operation`` for the subject at ``system`` is pending or in progress."""
        return self.tx.first(OPEN_OF_SUBJECT, {"system": system, "sid": subject_id, "operation": operation}) is not None

    # --- attempts ---------------------------------------------------------------------

    def add_attempt(self, task: TaskRecord, started_at: dt.datetime, duration_ms: int, result: str,
                    http_status: int | None = None, error: str | None = None, excerpt: str | None = None) -> None:
        self.tx.execute(INSERT_ATTEMPT, {"task_id": task.id, "system": task.system, "started_at": started_at,
                                         "duration_ms": duration_ms, "result": result, "http_status": http_status,
                                         "error": error[:500] if error else None,
                                         "excerpt": excerpt[:300] if excerpt else None})

    def attempts_of(self, task_id: str) -> list[AttemptRecord]:
        return [AttemptRecord(*r) for r in self.tx.all(ATTEMPTS_OF, {"tid": task_id})]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per system: tasks waiting and failed, the last success and failure, the last error."""
        out: dict[str, dict[str, Any]] = {}
        for system, waiting, failed in self.tx.all(SUMMARY):
            out[system] = {"waiting": int(waiting or 0), "failed": int(failed or 0)}
        for key, result in (("last_success_at", "succeeded"), ("last_failure_at", "failed")):
            for system, at in self.tx.all(LAST_ATTEMPT, {"result": result}):
                out.setdefault(system, {"waiting": 0, "failed": 0})[key] = at
        for system, row in out.items():
            error = self.tx.first(LAST_ERROR, {"system": system})
            row["last_error"] = error[0] if error else None
        return out

    # --- keys -------------------------------------------------------------------------

    def keys_after(self, after: str, limit: int) -> list[Any]:
        return self.tx.all(KEYS_AFTER, {"after": after, "n": limit})

    def keys_under(self, master_key_id: str) -> list[Any]:
        return self.tx.all(KEYS_UNDER, {"mk": master_key_id})

    def rewrap(self, keys: Iterable[tuple[str, bytes, str]]) -> None:
        """Store (task id, wrapped key, master key id) for each task (master-key rotation)."""
        self.tx.executemany(REWRAP, [{"b_id": tid, "b_wrapped": wrapped, "b_mk": mk} for tid, wrapped, mk in keys])

    def drop_stale_payloads(self, cutoff: dt.datetime) -> int:
        """Destroy the keys of tasks that finished before ``cutoff`` (failed ones kept theirs
        for an officer's retry); returns how many."""
        return int(self.tx.execute(STALE_PAYLOADS, {"b_cutoff": cutoff}).rowcount or 0)
