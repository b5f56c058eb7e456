"""The retention and minimisation sweep (:class:`RetentionService`).

The sweep walks subjects by id in batches, each batch one transaction. Set-based reads pick
the subjects concerned: those a rule fires for (:mod:`privacy.retention.rules`, one
statement per rule and batch) and those holding a field no purpose they keep lists (one
statement); most subjects are neither, and are never read. Per subject concerned the
decision is either the subject-level action (``delete`` or ``anonymise``, done for the
whole batch by :class:`~privacy.retention.removal.Removal`) or the removal of fields
nothing needs any more. The run's row (``retention_runs``) is updated in the same
transaction with the last subject id done and the counts so far, so a run that crashed is
resumed where it stopped by the next real run; work done is no longer due, so a new run
is idempotent too. Minimisation after a change (a withdrawal, a purpose that needs fewer
fields) happens at the next sweep. Restricted subjects (Art. 18) and subjects whose key
is already destroyed are left alone.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import PrivacyContext, as_json_time
from privacy.errors import Forbidden
from privacy.ledger import append_audit
from privacy.policy.catalogue import Catalogue, load_catalogue
from privacy.retention.removal import Batch, Removal, category
from privacy.retention.rules import Decision, Rule, decide, fired_in_range, hold_fields, keepers, rules_of
from privacy.retention.tally import Tally
from privacy.storage.repositories.retention import RetentionRepository, RetentionRunRecord
from privacy.storage.repositories.subjects import SubjectRecord, SubjectRepository

AUDIT_ACTION = "retention.swept"
KEPT_RUNS = 50  # what the API lists
BATCH_SIZE = 2000  # subjects per transaction; about a tenth due holds SQLite's write lock ~50 ms


def run_view(run: RetentionRunRecord) -> dict[str, Any]:
    """A stored run as the API shows it."""
    return {"id": run.id, "started_at": as_json_time(run.started_at), "finished_at": as_json_time(run.finished_at),
            "as_of": as_json_time(run.as_of), "dry_run": run.dry_run, "actor": run.actor, "status": run.status,
            "summary": run.summary}


class RetentionService:
    """Enforces the retention rules of the policy (see the module's docstring)."""

    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx

    def runs(self, limit: int = KEPT_RUNS) -> list[dict[str, Any]]:
        """The newest runs, newest first."""
        with self.ctx.database.unit_of_work() as session:
            return [run_view(r) for r in RetentionRepository(session).newest(limit)]

    def requested(self, as_of: dt.datetime, dry_run: bool | None, may_run_real: bool, actor: str
                  ) -> dict[str, Any]:
        """A run asked for by an officer or admin: a dry run unless asked otherwise, and a real
        one only for someone who may run it (an officer may only preview what would go)."""
        if dry_run is None:
            dry_run = not may_run_real
        if not dry_run and not may_run_real:
            raise Forbidden("only an admin key may run a real retention sweep; send dry_run true",
                            {"dry_run": ["a real run needs the scope 'admin'"]})
        return self.run(as_of, dry_run, actor)

    def run(self, as_of: dt.datetime, dry_run: bool, actor: str, batch_size: int = BATCH_SIZE,
            should_stop: Callable[[], bool] = lambda: False, progress: Callable[[int], Any] | None = None
            ) -> dict[str, Any]:
        """Sweep every subject as of ``as_of``; returns the summary (the audit entry's details,
        plus ``would_go`` for a dry run, ``stopped`` when ``should_stop`` ended it early).
        A real run resumes the newest real run left ``running`` (keeping its ``as_of``)."""
        catalogue = load_catalogue(self.ctx.database)
        run = self._start(as_of, dry_run, actor)
        tally = Tally.from_summary(run.summary)
        stopped = False
        while True:
            if should_stop():
                stopped = True
                break
            with self.ctx.database.unit_of_work() as session:
                last = SubjectRepository(session).batch_end(run.cursor or "", batch_size)
                if last is None:
                    break
                self._batch(session, catalogue, run.cursor or "", last, run.as_of, dry_run, tally)
                run.cursor = last
                run.summary = tally.summary(run.id, as_json_time(run.as_of) or "", dry_run)
                if not dry_run:
                    RetentionRepository(session).save_run(run)
            if progress is not None:
                progress(1)
        summary = tally.summary(run.id, as_json_time(run.as_of) or "", dry_run)
        if not stopped:
            self._finish(run, summary, dry_run, actor)
        return {**summary, "stopped": stopped}

    def _start(self, as_of: dt.datetime, dry_run: bool, actor: str) -> RetentionRunRecord:
        """The run to go on with: the newest real run left running, or a new one (stored at
        once for a real run, at the end for a dry run)."""
        with self.ctx.database.unit_of_work() as session:
            repo = RetentionRepository(session)
            if not dry_run and (running := repo.newest_running(False)) is not None:
                return running
            run = RetentionRunRecord(id=str(uuid.uuid4()), started_at=self.ctx.clock(), finished_at=None,
                                     as_of=as_of, dry_run=dry_run, actor=actor, status="running", cursor=None,
                                     summary={})
            if not dry_run:
                repo.add_run(run)
        return run

    def _finish(self, run: RetentionRunRecord, summary: dict[str, Any], dry_run: bool, actor: str) -> None:
        """Mark the run done; a real run writes its one ``retention.swept`` audit entry."""
        now = self.ctx.clock()
        run.status, run.finished_at = "done", now
        run.summary = {k: v for k, v in summary.items() if k not in ("would_go",)}
        with self.ctx.database.unit_of_work() as session:
            repo = RetentionRepository(session)
            if dry_run:
                repo.add_run(run)
                return
            repo.save_run(run)
            append_audit(session, actor, AUDIT_ACTION, now, target=run.id, details=summary)

    @staticmethod
    def _read(session: Session, catalogue: Catalogue, rules: list[Rule], after: str, last: str,
              as_of: dt.datetime) -> Batch:
        """The batch's reads over the id range (``after``, ``last``]: which rules fire and who
        may lose a field, one statement each (set-based); then only those subjects' rows."""
        repo = RetentionRepository(session)
        fired = fired_in_range(repo, rules, as_of, after, last)
        concerned = sorted(set(fired) | repo.unneeded_in_range(keepers(catalogue.purposes), after, last))
        if not concerned:
            return Batch([], {}, {}, fired)
        return Batch(SubjectRepository(session).of_ids(concerned), repo.states_of(concerned),
                      SubjectRepository(session).fields_of_many(concerned), fired)

    def _batch(self, session: Session, catalogue: Catalogue, after: str, last: str, as_of: dt.datetime,
               dry_run: bool, tally: Tally) -> None:
        listed = rules_of(catalogue.purposes)
        batch = self._read(session, catalogue, listed, after, last, as_of)
        rules = {r.purpose: r for r in listed}
        acting: list[tuple[SubjectRecord, Decision]] = []
        minimising: list[tuple[str, Decision]] = []
        for subject in batch.subjects:
            if subject.wrapped_key is None or subject.restricted:
                continue
            states = batch.states.get(subject.id, {})
            held = hold_fields(self.ctx.policy.legal_holds, catalogue.purposes, set(states),
                               subject.last_activity_at, as_of)
            decision = decide(catalogue.purposes, rules, states, batch.fired.get(subject.id, set()),
                              set(batch.fields.get(subject.id, {})), held)
            if decision.action is not None:
                acting.append((subject, decision))
            elif decision.drop:
                minimising.append((subject.id, decision))
        removal = Removal(self.ctx, session, catalogue, batch, as_of, dry_run, tally)
        removal.prepare(acting)
        self._minimise(session, minimising, dry_run, tally)
        removal.write()

    def _minimise(self, session: Session, minimising: list[tuple[str, Decision]], dry_run: bool,
                  tally: Tally) -> None:
        """Remove the fields nothing needs any more (two statements for the whole batch)."""
        for subject_id, decision in minimising:
            for name in sorted(decision.drop):
                tally.field(decision.blame[name], category(self.ctx, name), "minimise")
            if dry_run:
                for purpose in sorted(set(decision.blame.values())):
                    tally.would(subject_id, purpose, "minimise",
                                [n for n, p in decision.blame.items() if p == purpose])
        if dry_run or not minimising:
            return
        subjects = SubjectRepository(session)
        subjects.drop_many([(sid, name) for sid, d in minimising for name in sorted(d.drop)])
        subjects.updated_many([sid for sid, _ in minimising], self.ctx.clock())

