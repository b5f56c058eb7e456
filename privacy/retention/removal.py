"""A sweep's subject-level actions for one batch (:class:`Removal`): ``delete`` or ``anonymise``.

Per subject only the cryptography runs (the data key unwrapped once: the aggregates an
anonymisation keeps, the fields a legal hold keeps re-sealed under the hold's key, the
address an erasure task looks for); the rows then go for the whole batch at once, a
handful of statements however many subjects are due.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import PrivacyContext
from privacy.policy.catalogue import Catalogue
from privacy.requests.fulfilment import held_values
from privacy.retention.anonymise import aggregates
from privacy.retention.rules import Decision, hold_fields
from privacy.retention.tally import Tally
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.retention import RetentionRepository, StateRow
from privacy.storage.repositories.subjects import HeldValue, SubjectRecord, SubjectRepository
from privacy.storage.repositories.tasks import TaskRecord, TaskRepository
from privacy.tasks.planning import holds_purpose, sealed_task, systems_for


@dataclass
class Batch:
    """What a batch reads of the subjects it concerns: records, states, sealed fields by name
    (read at once for the decision and the action: most subjects concerned are acted on),
    and the purposes whose rule fired, by subject id."""

    subjects: list[SubjectRecord]
    states: dict[str, dict[str, StateRow]]
    fields: dict[str, dict[str, bytes]]
    fired: dict[str, set[str]]


def category(ctx: PrivacyContext, name: str) -> str:
    """The data category of field ``name`` (``other`` for a field the policy no longer lists)."""
    spec = ctx.policy.fields.get(name)
    return spec.category if spec else "other"


@dataclass
class Removal:
    """Deletes or anonymises the batch's due subjects (see the module's docstring): holds keep
    their fields as an erasure's do, each connected system that holds a lapsed purpose gets
    an erasure task. A dry run only counts and lists."""

    ctx: PrivacyContext
    session: Session
    catalogue: Catalogue
    batch: Batch
    as_of: dt.datetime
    dry_run: bool
    tally: Tally
    anonymised: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, list[HeldValue]] = field(default_factory=dict)
    tasks: list[TaskRecord] = field(default_factory=list)
    hold_keys: dict[str, bytes] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def prepare(self, acting: list[tuple[SubjectRecord, Decision]]) -> None:
        """Read and count; for a real run, seal what stays (no row changed yet: on SQLite the
        write lock is taken by :meth:`write` alone)."""
        self.ids = [subject.id for subject, _ in acting]
        erasing = systems_for(self.ctx.policy.connectors, "erasure")
        for subject, decision in acting:
            assert decision.action is not None and decision.rule is not None
            targets = [c for c in erasing if any(holds_purpose(c, p) for p in decision.fired)]
            if self.dry_run:
                gone = sorted(set(self.batch.fields.get(subject.id, {})) - self._held_names(subject))
                self.tally.would(subject.id, decision.rule, decision.action, gone)
            else:
                gone = self._prepare(subject, self.batch.fields.get(subject.id, {}), decision, targets)
            for name in gone:
                self.tally.field(decision.rule, category(self.ctx, name), decision.action)
            self.tally.tasks_planned += len(targets)
            if decision.action == "delete":
                self.tally.deleted += 1
            else:
                self.tally.anonymised += 1

    def _held_names(self, subject: SubjectRecord) -> set[str]:
        return hold_fields(self.ctx.policy.legal_holds, self.catalogue.purposes,
                           set(self.batch.states.get(subject.id, {})), subject.last_activity_at, self.as_of)

    def _prepare(self, subject: SubjectRecord, fields: dict[str, bytes], decision: Decision, targets: list[Any]
                 ) -> list[str]:
        """The subject's anonymised record, held fields and erasure tasks; returns the
        fields removed (not held)."""
        crypto, states = self.ctx.crypto, self.batch.states.get(subject.id, {})
        dek = crypto.data_key(subject) if fields else None
        email = None
        if targets and "email" in fields and dek is not None:  # read before the key is destroyed
            email = crypto.decrypt_field(dek, subject.id, "email", fields["email"])
        if decision.action == "anonymise":
            values = aggregates(crypto, subject, fields, states, self.as_of, dek)
            self.anonymised.append({**values, "anonymised_at": self.as_of, "rule": decision.rule})
        held = held_values(self.session, self.ctx, self.catalogue, subject, set(states), fields, self.as_of, dek,
                           self.hold_keys)
        if held:
            self.held[subject.id] = held
        now = self.ctx.clock()
        self.tasks += [sealed_task(crypto, c, "erasure", {"email": email or ""}, now, subject_id=subject.id)
                       for c in targets]
        return sorted(set(fields) - {h.name for h in held})

    def write(self) -> None:
        """The batch's rows: anonymised records, held fields, then states, fields and subjects
        go (their keys destroyed), and the erasure tasks are planned."""
        if self.dry_run or not self.ids:
            return
        ids, now = self.ids, self.ctx.clock()
        subjects = SubjectRepository(self.session)
        RetentionRepository(self.session).add_anonymised(self.anonymised)
        subjects.hold_many(self.held, now)
        ConsentStateRepository(self.session).forget_many(ids)
        subjects.erase_many(ids)
        TaskRepository(self.session).add(self.tasks)
