"""Recording a sign-up or preference change: the service's hot path.

Every change is one ledger event per purpose, appended in the same transaction that
updates the current-state table, so reads are one indexed lookup and the ledger is the
proof. Minimisation happens in the plan (:mod:`privacy.consent.plan`): only the fields a
purpose the subject now agrees to (or has a contract for) needs are encrypted and
stored; the rest is reported back as ``dropped_fields`` and never written.

A recording reads, plans with no statement running, and writes
(:meth:`privacy.storage.database.Database.read_then_write`): on SQLite in two short raw
transactions (the write lock is held for the statements alone), on PostgreSQL in one
pipelined transaction of three round trips. A subject changed in between (or an
Idempotency-Key used in between) means plan again.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from privacy.consent.plan import Plan, Planner, prepare_rows, still_current, write
from privacy.consent.validation import ConsentCommand, Wishes, check_age, check_subject, checked
from privacy.context import PrivacyContext
from privacy.errors import Conflict, InvalidInput
from privacy.policy.catalogue import ask_stamp, cached_catalogue, catalogue_as_of, load_catalogue
from privacy.storage.database import ReadThenWrite, in_transaction
from privacy.storage.repositories.idempotency import IdempotencyRepository
from privacy.storage.repositories.tasks import TaskRecord, TaskRepository
from privacy.storage.statements import Prepared, integrity_errors
from privacy.tasks.planning import ConsentFanout

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3


@dataclass(slots=True)
class RecordResult:
    """What a recording answers: the body (subject id, states, signed receipt, dropped
    fields), and whether it is the stored answer to an earlier request with the same
    Idempotency-Key (nothing was recorded this time)."""

    body: dict[str, Any]
    replayed: bool = False


class _Stale(Exception):
    """The subject's state moved between planning and writing."""


class Recorder:
    """Records sign-ups and preference changes (``ConsentService.record``)."""

    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.fanout = ConsentFanout.of(ctx)

    def record(self, cmd: ConsentCommand, now: dt.datetime, idempotency: tuple[str, str] | None = None
               ) -> RecordResult:
        """Record a sign-up or preference change.

        ``idempotency`` is (api key id, Idempotency-Key): a repeat with the same body gets
        the first answer again, a repeat with another body is a conflict.
        """
        try:
            wishes = checked(self.ctx, cmd, cached_catalogue(self.database))
        except InvalidInput:
            # Another process may have just added the purpose or notice version: look again.
            wishes = checked(self.ctx, cmd, load_catalogue(self.database))
        planner = Planner(self.ctx)
        fingerprint = cmd.fingerprint(self.ctx.crypto) if idempotency else ""
        retry_on: tuple[type[Exception], ...] = (*integrity_errors(self.database.dialect), _Stale)
        with self.database.raw_connection() as conn:  # one pool checkout for the read and the write
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    with self.database.read_then_write(conn) as unit:
                        wishes, plan = self._plan(unit, planner, cmd, wishes, now)
                        replay = self._write(unit, plan, now, idempotency, fingerprint)
                    break
                except retry_on:
                    # Another request changed this subject (or used the same Idempotency-Key)
                    # between planning and writing: plan again from what it left.
                    if attempt == WRITE_ATTEMPTS - 1:
                        raise Conflict("the subject changed concurrently; send the request again") from None
        if replay is not None:
            return replay
        log.info("consent recorded subject=%s purposes=%s", plan.subject_id, ",".join(sorted(plan.body["consents"])))
        return RecordResult(plan.body)

    def _plan(self, unit: ReadThenWrite, planner: Planner, cmd: ConsentCommand, wishes: Wishes,
              now: dt.datetime) -> tuple[Wishes, Plan]:
        """Read the subject's state (on SQLite in a short transaction), then plan with no
        statement running; returns the wishes (checked again if a purpose changed since they
        were) and the plan."""
        database, session = self.database, self.database.session
        if in_transaction(session):
            session.rollback()  # (a catalogue look-up) no snapshot is held while writing
        with unit.read() as reader:
            asked = ask_stamp(reader)
            subject = planner.find_subject(reader, wishes.values, cmd.subject_id)
            check_subject(self.ctx.crypto, subject, cmd, wishes.values)
            known = planner.current(reader, subject)
            stamp = asked()
        if stamp != wishes.catalogue.stamp:  # a purpose changed since this process last read them
            wishes = checked(self.ctx, cmd, catalogue_as_of(database, stamp))
            session.rollback()
        # No snapshot is held while planning (signing and sealing take about 0.2 ms): a
        # SQLite reader pins the WAL frames after its snapshot, which a checkpoint cannot
        # copy while the reader lasts.
        check_age(self.ctx.policy, wishes, now)
        plan = planner.plan(subject, known, cmd.source, wishes.values, wishes.wishes, wishes.notices,
                            wishes.catalogue, now, cmd.language)
        return wishes, plan

    def _write(self, unit: ReadThenWrite, plan: Plan, now: dt.datetime, idempotency: tuple[str, str] | None,
               fingerprint: str) -> RecordResult | None:
        """Store the plan (its rows converted before the lock); the stored answer instead when
        the Idempotency-Key was used before."""
        dialect = self.database.dialect
        rows = prepare_rows(plan, now, dialect)
        answer: Prepared | None = None
        if idempotency:
            answer = IdempotencyRepository.prepare(*idempotency, fingerprint, plan.body, now, dialect)
        tasks = self._consent_tasks(unit, plan, now)
        with unit.write() as tx:
            if idempotency:
                replay = _replay(IdempotencyRepository(tx), idempotency, fingerprint)
                if replay is not None:
                    return replay
            if not still_current(tx, plan):
                raise _Stale
            write(tx, plan, rows)
            if tasks:
                TaskRepository(tx).add(tasks)
            if answer is not None:
                tx.run(answer)
        return None

    def _consent_tasks(self, unit: ReadThenWrite, plan: Plan, now: dt.datetime) -> list[TaskRecord]:
        """The connected systems' tasks of the plan's withdrawals, sealed before the write
        lock is taken (whom to look for is read in a short read transaction of its own)."""
        withdrawn = {e["purpose"]: e["status"] for e in plan.events if e["status"] == "withdrawn"}
        if not withdrawn or not self.fanout.systems or plan.new_subject is not None:
            return []
        with unit.read() as reader:
            return self.fanout.tasks(reader, plan.subject_id, withdrawn, now)


def _replay(answers: IdempotencyRepository, idempotency: tuple[str, str], fingerprint: str) -> RecordResult | None:
    stored = answers.find(*idempotency)
    if stored is None:
        return None
    if stored.request_hash != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request body",
                       {"Idempotency-Key": ["reused with a different body"]}, code="idempotency_key_reused")
    return RecordResult(stored.body, replayed=True)
