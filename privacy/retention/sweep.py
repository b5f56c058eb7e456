"""The retention and minimisation sweep (:class:`RetentionService`).

The sweep walks subjects by id in batches, each batch one transaction: the rules that fire
(:mod:`privacy.retention.rules`, one statement per rule and batch), then per subject
concerned either the subject-level action (``delete`` or ``anonymise``) or the removal of
fields nothing needs any more. The run's row (``retention_runs``) is updated in the same
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
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import PrivacyContext, as_json_time
from privacy.ledger import append_audit
from privacy.policy.catalogue import Catalogue, load_catalogue
from privacy.requests.fulfilment import held_values
from privacy.retention.anonymise import anonymise
from privacy.retention.rules import Decision, Rule, decide, fired_in_range, hold_fields, rules_of
from privacy.retention.tally import Tally
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.retention import RetentionRepository, RetentionRunRecord, StateRow
from privacy.storage.repositories.subjects import SubjectRecord, SubjectRepository
from privacy.storage.repositories.tasks import TaskRepository
from privacy.tasks.planning import holds_purpose, sealed_task, systems_for

AUDIT_ACTION = "retention.swept"
KEPT_RUNS = 50  # what the API lists


@dataclass
class _Batch:
    """What one batch reads: its subjects, their states and stored field names, the rules fired."""

    subjects: list[SubjectRecord]
    states: dict[str, dict[str, StateRow]]
    fields: dict[str, set[str]]
    fired: dict[str, set[str]]


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

    def run(self, as_of: dt.datetime, dry_run: bool, actor: str, batch_size: int = 500,
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
                subjects = SubjectRepository(session).after(run.cursor or "", batch_size)
                if not subjects:
                    break
                self._batch(session, catalogue, run.cursor or "", subjects, run.as_of, dry_run, tally)
                run.cursor = subjects[-1].id
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
    def _read(session: Session, catalogue: Catalogue, after: str, subjects: list[SubjectRecord],
              as_of: dt.datetime) -> _Batch:
        """The batch's reads, set-based over the id range (``after``, last id of the batch]."""
        repo = RetentionRepository(session)
        last = subjects[-1].id
        rules = rules_of(catalogue.purposes)
        return _Batch(subjects, repo.states_in_range(after, last), repo.field_names_in_range(after, last),
                      fired_in_range(repo, rules, as_of, after, last))

    def _batch(self, session: Session, catalogue: Catalogue, after: str, subjects: list[SubjectRecord],
               as_of: dt.datetime, dry_run: bool, tally: Tally) -> None:
        batch = self._read(session, catalogue, after, subjects, as_of)
        rules = {r.purpose: r for r in rules_of(catalogue.purposes)}
        for subject in batch.subjects:
            if subject.wrapped_key is None or subject.restricted:
                continue
            states = batch.states.get(subject.id, {})
            stored = batch.fields.get(subject.id, set())
            held = hold_fields(self.ctx.policy.legal_holds, catalogue.purposes, set(states),
                               subject.last_activity_at, as_of)
            decision = decide(catalogue.purposes, rules, states, batch.fired.get(subject.id, set()), stored, held)
            if decision.action is not None:
                self._subject_action(session, catalogue, subject, states, decision, rules, as_of, dry_run, tally)
            elif decision.drop:
                self._minimise(session, subject, decision, as_of, dry_run, tally)

    def _minimise(self, session: Session, subject: SubjectRecord, decision: Decision, as_of: dt.datetime,
                  dry_run: bool, tally: Tally) -> None:
        for name in sorted(decision.drop):
            tally.field(decision.blame[name], self._category(name), "minimise")
        if dry_run:
            for purpose in sorted(set(decision.blame.values())):
                tally.would(subject.id, purpose, "minimise",
                            [n for n, p in decision.blame.items() if p == purpose])
            return
        subjects = SubjectRepository(session)
        subjects.drop_fields(subject.id, decision.drop)
        subjects.updated(subject.id, self.ctx.clock())

    def _category(self, name: str) -> str:
        spec = self.ctx.policy.fields.get(name)
        return spec.category if spec else "other"

    def _subject_action(self, session: Session, catalogue: Catalogue, subject: SubjectRecord,
                        states: dict[str, StateRow], decision: Decision, rules: dict[str, Rule],
                        as_of: dt.datetime, dry_run: bool, tally: Tally) -> None:
        """Delete or anonymise the subject: holds keep their fields as an erasure's do, each
        connected system that holds a lapsed purpose gets an erasure task."""
        assert decision.action is not None and decision.rule is not None
        subjects = SubjectRepository(session)
        fields = subjects.fields(subject.id)
        targets = [c for c in systems_for(self.ctx.policy.connectors, "erasure")
                   if any(holds_purpose(c, p) for p in decision.fired)]
        if dry_run:
            held_names = hold_fields(self.ctx.policy.legal_holds, catalogue.purposes, set(states),
                                     subject.last_activity_at, as_of)
            gone = sorted(set(fields) - held_names)
            tally.would(subject.id, decision.rule, decision.action, gone)
        else:
            gone = self._remove(session, catalogue, subject, fields, states, decision, as_of, targets)
        for name in gone:
            tally.field(decision.rule, self._category(name), decision.action)
        tally.tasks_planned += len(targets)
        if decision.action == "delete":
            tally.deleted += 1
        else:
            tally.anonymised += 1

    def _remove(self, session: Session, catalogue: Catalogue, subject: SubjectRecord, fields: dict[str, bytes],
                states: dict[str, StateRow], decision: Decision, as_of: dt.datetime, targets: list[Any]
                ) -> list[str]:
        """The subject's rows go, its key destroyed; returns the fields removed (not held)."""
        crypto, now = self.ctx.crypto, self.ctx.clock()
        email = None
        if targets and "email" in fields:  # decrypted before the key is destroyed
            email = crypto.decrypt_field(crypto.data_key(subject), subject.id, "email", fields["email"])
        if decision.action == "anonymise":
            assert decision.rule is not None
            anonymise(RetentionRepository(session), crypto, subject, fields, states, decision.rule, as_of)
        held = held_values(session, self.ctx, catalogue, subject, set(states), fields, as_of)
        subjects = SubjectRepository(session)
        if held:
            subjects.hold(subject.id, held, now)
        ConsentStateRepository(session).forget(subject.id)
        subjects.erase(subject.id, now)
        TaskRepository(session).add([sealed_task(crypto, c, "erasure", {"email": email or ""}, now,
                                                 subject_id=subject.id) for c in targets])
        return sorted(set(fields) - {h.name for h in held})

