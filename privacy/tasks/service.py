"""What officers (and a manual system's owner) do with connected systems' tasks.

Retrying a failed system plans nothing new and moves no deadline: the same task (same
id, the system's idempotency key) is due again with a fresh task deadline, and a request
that had closed as ``partially_completed`` is worked again. Marking a system done records
the officer's note. Every change is an audit entry.
"""
from __future__ import annotations

import datetime as dt
import os
from typing import Any

from privacy.connectors.base import Connector, ConnectorError
from privacy.connectors.registry import build
from privacy.context import PrivacyContext, as_json_time
from privacy.errors import Conflict, Forbidden, NotFound
from privacy.ledger import append_audit
from privacy.policy.file import ConnectorDef
from privacy.requests import records
from privacy.requests.states import move
from privacy.requests.workflow import WorkflowService
from privacy.storage.repositories.tasks import LOCAL, TaskRecord, TaskRepository
from privacy.tasks.outcomes import audit, forget_payload
from privacy.tasks.planning import deadline_of, operations_of

KEEP_FAILED_DAYS = 30


class TaskService:
    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self.database = ctx.database

    def _definition(self, system: str) -> ConnectorDef:
        for definition in self.ctx.policy.connectors:
            if definition.name == system:
                return definition
        raise NotFound(f"no connected system is named {system!r}")

    def _task(self, session: Any, request_id: str, system: str) -> TaskRecord:
        records.load(session, request_id, lock=True)
        task = None if system == LOCAL else TaskRepository(session).of_request_system(request_id, system)
        if task is None:
            raise NotFound(f"request {request_id} has no task for a connected system named {system!r}")
        return task

    def retry(self, request_id: str, system: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Run a failed system's task again (409 unless it failed)."""
        definition = self._definition(system)
        with self.database.unit_of_work() as session:
            task = self._task(session, request_id, system)
            if task.status != "failed":
                raise Conflict(f"the task of {system} is {task.status}; only a failed one is retried",
                               {"status": [task.status]}, code="not_failed")
            if task.wrapped_key is None:
                raise Conflict("this task no longer knows whom to look for (its key was destroyed)",
                               {"system": [system]}, code="task_forgotten")
            request = records.load(session, request_id, lock=True)
            if request.status == "partially_completed":
                move(session, request, "in_progress", actor, now, {"retry": system})
            task.status, task.next_attempt_at, task.last_error = "pending", now, None
            task.deadline_at, task.finished_at, task.result = deadline_of(definition, now), None, None
            TaskRepository(session).save(task, now)
            audit(session, task, "task.retry_requested", now, actor)
            return system_view(task)

    def mark_done(self, request_id: str, system: str, note: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """An officer confirms a manual system's task (or a failed one handled by hand) done."""
        definition = self._definition(system)
        with self.database.unit_of_work() as session:
            task = self._task(session, request_id, system)
            allowed = task.status == "failed" or (definition.type == "manual" and task.status in
                                                  ("pending", "in_progress"))
            if not allowed:
                raise Conflict(f"the task of {system} is {task.status}; only a manual system's open task or a "
                               "failed one can be marked done", {"status": [task.status]}, code="not_markable")
            self._done(session, task, actor, now, {"note": note})
        WorkflowService(self.ctx).complete_if_ready(request_id, now)
        return self.view(request_id, system)

    def confirm_by_link(self, task_id: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """The owner of a manual system confirms its task done with the mailed link (single use)."""
        if not self.ctx.crypto.check_link_token(token, "task-done", task_id):
            raise Forbidden("this link is not valid")
        with self.database.unit_of_work() as session:
            task = TaskRepository(session).get(task_id)
            if task is None:
                raise NotFound("no such task")
            if task.status not in ("pending", "in_progress"):
                done = "confirmed done" if task.status == "succeeded" else task.status
                raise Conflict(f"this task was already {done}", {"token": ["used"]}, code="token_used")
            self._done(session, task, f"owner:{task.system}", now, {"by": "link"})
        if task.request_id:
            WorkflowService(self.ctx).complete_if_ready(task.request_id, now)
        return {"task": task_id, "system": task.system, "status": "succeeded"}

    def _done(self, session: Any, task: TaskRecord, actor: str, now: dt.datetime, details: dict[str, Any]) -> None:
        task.status, task.outcome, task.last_error, task.finished_at = "succeeded", "done", None, now
        task.lease_owner = task.lease_until = None
        forget_payload(task)
        tasks = TaskRepository(session)
        tasks.save(task, now)
        how = "confirmed by the owner's link" if details.get("by") == "link" else "marked done by an officer"
        tasks.add_attempt(task, now, 0, "succeeded", excerpt=how)
        audit(session, task, "task.marked_done", now, actor, details)

    def view(self, request_id: str, system: str) -> dict[str, Any]:
        with self.database.unit_of_work() as session:
            return system_view(self._task(session, request_id, system))

    def forget_finished(self, now: dt.datetime) -> int:
        """A failed task keeps whom it looked for so that an officer can retry it, for
        :data:`KEEP_FAILED_DAYS`; then its key goes too. Returns how many keys were destroyed."""
        with self.database.unit_of_work() as session:
            count = TaskRepository(session).drop_stale_payloads(now - dt.timedelta(days=KEEP_FAILED_DAYS))
            if count:
                append_audit(session, "scheduler", "tasks.forgotten", now, details={"tasks": count})
        return count

    # --- connected systems ------------------------------------------------------------

    def connectors(self, test: bool = False) -> list[dict[str, Any]]:
        """Each connected system: its operations, last success and failure, tasks waiting and
        failed, secrets it misses (by variable name), and with ``test`` a connection check."""
        with self.database.unit_of_work() as session:
            summary = TaskRepository(session).summary()
        out = []
        for d in self.ctx.policy.connectors:
            row = summary.get(d.name, {})
            item: dict[str, Any] = {
                "name": d.name, "type": d.type, "operations": list(operations_of(d)),
                "last_success_at": as_json_time(row.get("last_success_at")),
                "last_failure_at": as_json_time(row.get("last_failure_at")), "last_error": row.get("last_error"),
                "waiting": row.get("waiting", 0), "failed": row.get("failed", 0),
                "missing_secrets": d.missing_secrets(os.environ)}
            if test:
                item["test_connection"] = test_connection(build(d))
            out.append(item)
        return out

    def test(self, name: str) -> dict[str, Any]:
        return test_connection(build(self._definition(name)))


def test_connection(connector: Connector) -> dict[str, Any]:
    """``{"ok": bool, "detail": str}``: whether the system answers with the configured
    credentials; the connector is closed afterwards (it was built for this check alone)."""
    try:
        return {"ok": True, "detail": connector.test_connection()}
    except ConnectorError as exc:
        return {"ok": False, "detail": exc.reason}
    except Exception as exc:
        return {"ok": False, "detail": f"could not test ({type(exc).__name__})"}
    finally:
        connector.close()


def system_view(task: TaskRecord) -> dict[str, Any]:
    """One system's share of a request as ``GET /v1/requests/{id}`` shows it."""
    return {"name": task.system, "status": task.status, "attempts": task.attempts, "last_error": task.last_error,
            "outcome": task.outcome, "operation": task.operation,
            "finished_at": as_json_time(task.finished_at)}
