"""The scheduler's task runner: claims due tasks with a lease and runs them in a bounded pool.

One dispatcher thread claims, per system, as many due tasks as the system has free slots
(``max_in_flight`` less the live leases of every process), leases them for the
connector's timeout and a margin, and hands them to a thread pool. On PostgreSQL the
claim reads its candidates ``FOR UPDATE SKIP LOCKED`` under a transaction-level advisory
lock, so processes on several machines share the work, never run a task twice at once,
and count each other's slots right. A process killed mid-task leaves a lease that runs
out; the task is then claimed again (same id, which systems take as an idempotency key).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import text

from privacy.connectors.base import Connector, ConnectorError, Skip, Waiting
from privacy.connectors.registry import build_all
from privacy.context import PrivacyContext
from privacy.crypto.keys import CryptoError
from privacy.requests.workflow import WorkflowService
from privacy.storage.repositories.tasks import TaskRecord, TaskRepository
from privacy.tasks import manual
from privacy.tasks.outcomes import Attempt, record
from privacy.tasks.planning import open_call

log = logging.getLogger(__name__)
CLAIM_LOCK = 7_320_412_001  # pg_advisory_xact_lock key: one claim at a time across processes
LEASE_MARGIN_S = 30.0
MAX_WORKERS = 256


class TaskRunner:
    """Runs connected systems' tasks until :meth:`stop`. ``scope`` opens whatever each thread
    needs around its database work (the Flask app context, given by the scheduler)."""

    def __init__(self, ctx: PrivacyContext, connectors: dict[str, Connector] | None = None, *,
                 lease_s: float | None = None, poll_s: float = 0.5, pool_size: int | None = None,
                 scope: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext) -> None:
        self.ctx = ctx
        self.connectors = build_all(ctx.policy) if connectors is None else connectors
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        slots = sum(c.definition.max_in_flight for c in self.connectors.values())
        self.workers = max(1, min(pool_size or slots, MAX_WORKERS))
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="task")
        self.scope = scope
        self.running: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.wake = threading.Event()  # a task ended: a slot is free, claim again without waiting
        self.postgres = ctx.database.dialect.name == "postgresql"

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Claim and dispatch until stopped; then let the tasks in hand finish."""
        if not self.connectors:
            log.info("tasks: no connected systems in the policy; nothing to run")
            return
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                claimed = self.claim()
            except Exception:
                log.exception("tasks: claiming failed; trying again")
                claimed = 0
            if not claimed:
                self.wake.wait(self.poll_s)
        self.pool.shutdown(wait=True)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="task-dispatcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def drain(self, timeout_s: float = 60.0) -> int:
        """Claim and run until nothing is due (tests and the CLI); returns tasks run."""
        done, until = 0, time.monotonic() + timeout_s
        while time.monotonic() < until:
            claimed = self.claim(wait=True)
            done += claimed
            if not claimed and not any(self.running.values()):
                break
        return done

    def claim(self, wait: bool = False) -> int:
        """Lease due tasks of every system with free slots and start them; returns how many."""
        now = self.ctx.clock()
        claimed: list[tuple[Connector, TaskRecord]] = []
        with self.lock:
            if sum(self.running.values()) >= self.workers:
                return 0
        if not self._any_due(now):  # most polls: one indexed read, no write lock (SQLite's is shared)
            return 0
        with self.scope(), self.ctx.database.unit_of_work() as session:
            if self.postgres:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            repo = TaskRepository(session)
            flight = repo.in_flight(now)
            with self.lock:
                idle = self.workers - sum(self.running.values())
            for name, connector in self.connectors.items():
                with self.lock:
                    busy = max(flight.get(name, 0), self.running[name])
                free = min(connector.definition.max_in_flight - busy, idle - len(claimed))
                until = now + dt.timedelta(seconds=self._lease(connector))
                claimed += [(connector, t) for t in repo.claim(name, free, self.owner, until, now, self.postgres)]
        futures = []
        for connector, task in claimed:
            with self.lock:
                self.running[connector.name] += 1
            futures.append(self.pool.submit(self._execute, connector, task))
        if wait:
            for future in futures:
                future.result()
        return len(claimed)

    def _any_due(self, now: dt.datetime) -> bool:
        with self.scope():
            session = self.ctx.database.session
            try:
                return TaskRepository(session).any_due(now)
            finally:
                session.rollback()

    def _lease(self, connector: Connector) -> float:
        return self.lease_s if self.lease_s is not None else connector.timeout_s * 2 + LEASE_MARGIN_S

    # --- one task ---------------------------------------------------------------------

    def _execute(self, connector: Connector, task: TaskRecord) -> None:
        try:
            with self.scope():
                try:
                    self._run_one(connector, task)
                finally:
                    self.ctx.database.session.remove()
        except Exception:
            log.exception("task %s at %s: could not record the attempt; its lease runs out", task.id, task.system)
        finally:
            with self.lock:
                self.running[connector.name] -= 1
            self.wake.set()

    def _run_one(self, connector: Connector, task: TaskRecord) -> None:
        started, clock = self.ctx.clock(), time.monotonic()
        attempt = self._attempt(connector, task, started)
        attempt = Attempt(**{**attempt.__dict__, "duration_ms": int((time.monotonic() - clock) * 1000)})
        now = self.ctx.clock()
        with self.ctx.database.unit_of_work() as session:
            current = TaskRepository(session).get_leased(task.id, self.owner)
            if current is None:
                log.warning("task %s at %s: lease lost before its answer was recorded", task.id, task.system)
                return
            if attempt.kind == "waiting":
                manual.ask_owner(session, self.ctx, current, attempt, now)
            status = record(session, self.ctx, current, connector.definition, attempt, now)
        log.info("task %s at %s (%s): %s", task.id, task.system, task.operation, attempt.kind)
        if current.request_id is not None and status in ("succeeded", "skipped", "failed"):
            try:
                WorkflowService(self.ctx).complete_if_ready(current.request_id, self.ctx.clock())
            except Exception:  # the scheduler's process_requests job closes it at its next run
                log.exception("request %s: could not close it after its task; retried by the scheduler",
                              current.request_id)

    def _attempt(self, connector: Connector, task: TaskRecord, started: dt.datetime) -> Attempt:
        if task.deadline_at is not None and started >= task.deadline_at:
            return Attempt("failed", started, 0, reason=f"the deadline passed after {task.attempts - 1} attempts"
                           + (f" ({task.last_error})" if task.last_error else ""))
        try:
            call = open_call(self.ctx.crypto, task)
        except CryptoError:
            return Attempt("skipped", started, 0, reason="whom to look for was destroyed with the task's key")
        try:
            result = connector.run(call)
        except Skip as exc:
            return Attempt("skipped", started, 0, reason=exc.reason[:500])
        except Waiting as exc:
            return Attempt("waiting", started, 0, reason="waiting for the system's owner to confirm",
                           mail_to=exc.owner_email, instructions=exc.instructions)
        except ConnectorError as exc:
            return Attempt("retry" if exc.retryable else "failed", started, 0, reason=exc.reason[:500],
                           http_status=exc.http_status, excerpt=exc.excerpt, retry_after=exc.retry_after)
        except Exception as exc:  # a fault in a connector: retried like an outage, never a silent end
            log.exception("task %s at %s: connector fault", task.id, task.system)
            return Attempt("retry", started, 0, reason=f"internal error in the connector ({type(exc).__name__})")
        return Attempt("succeeded", started, 0, outcome=result.outcome, data=result.data,
                       http_status=result.http_status, excerpt=result.excerpt)
