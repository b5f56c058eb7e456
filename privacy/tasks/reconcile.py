"""Reconciling consent with connected systems: each system's marketing opt-in state
compared with the ledger (``privacy connectors reconcile [--repair]``).

For every connected system whose connector can tell whether it considers a person
subscribed (:meth:`Connector.opt_in`) and that takes the ``consent`` operation, each
subject we hold is looked up by e-mail, and the answer compared with our consent states
for the system's purposes (its ``purposes`` setting; otherwise every purpose whose legal
basis is consent). We *allow* marketing when any of those purposes is ``granted`` and the
subject is not restricted. Two drifts:

``subscribed_but_withdrawn``
    the system considers the person subscribed where we hold no granted consent: mail is
    being sent without consent, a violation in progress.
``withdrawn_but_granted``
    the system considers the person unsubscribed where we hold a granted consent: an
    opt-in was lost on the way.

A system that does not hold the person (``None``) is no drift. A failed look-up is
counted with its reason (reasons name what went wrong, never the person) and the walk
goes on; a system that fails :data:`STOP_AFTER_ERRORS` look-ups in a row without one
answer is not asked further in that run (it is down, or refuses our credentials).

With ``repair`` each ``subscribed_but_withdrawn`` drift plans a ``consent`` task exactly as
a withdrawal does, so the task runner pushes our state to the system (no task is planned
when one for that person and system is already waiting, or when our state changed to
granted since the look-up). A ``withdrawn_but_granted`` drift is **only reported, never
repaired**: this service does not push opt-ins, and re-subscribing someone on the strength
of a ledger entry the system lost track of is for a person to decide.

Subjects are walked in batches by id (never the whole table at once), each e-mail
decrypted with the subject's data key and held only while its batch is looked up; erased
subjects (their key destroyed) are skipped. The report holds counts and pseudonymous
subject ids, never an e-mail address; every run is stored (``reconcile_runs``) and
audited (``connectors.reconciled``, counts only).
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from privacy.connectors.base import Connector, ConnectorError
from privacy.connectors.registry import CONNECTOR_CLASSES, build_all
from privacy.context import PrivacyContext, as_json_time
from privacy.crypto.keys import CryptoError
from privacy.ledger import append_audit
from privacy.policy.catalogue import load_catalogue
from privacy.policy.file import ConnectorDef
from privacy.storage.repositories.consent_states import ConsentStateRecord, ConsentStateRepository
from privacy.storage.repositories.reconcile import ReconcileRunRecord, ReconcileRunRepository
from privacy.storage.repositories.subjects import SubjectRecord, SubjectRepository
from privacy.storage.repositories.tasks import TaskRepository
from privacy.tasks.planning import operations_of, sealed_task

log = logging.getLogger(__name__)

SUBSCRIBED_BUT_WITHDRAWN = "subscribed_but_withdrawn"
WITHDRAWN_BUT_GRANTED = "withdrawn_but_granted"
DRIFT_KINDS = (SUBSCRIBED_BUT_WITHDRAWN, WITHDRAWN_BUT_GRANTED)
BATCH = 500  # subjects read (and e-mails decrypted) at a time
STOP_AFTER_ERRORS = 50  # failed look-ups in a row, without one answer, before a system is given up for the run
MAX_LISTED_DRIFTS = 10_000  # per system; the counts go on beyond
MAX_REASONS = 20  # distinct error reasons kept per system
REASON_CHARS = 200
ACTION = "connectors.reconciled"
KEPT_RUNS = 20  # what the API lists


@dataclass
class SystemReport:
    """One system's share of a run."""

    purposes: list[str]
    checked: int = 0  # subjects looked up
    held: int = 0  # of which the system holds
    drifts: list[dict[str, Any]] = field(default_factory=list)  # {subject_id, kind}, at most MAX_LISTED_DRIFTS
    counts: Counter[str] = field(default_factory=Counter)  # drifts by kind
    errors: int = 0
    error_reasons: Counter[str] = field(default_factory=Counter)
    repaired: int = 0  # consent tasks planned
    stopped: str | None = None  # why the system was not asked further

    def drift(self, subject_id: str, kind: str) -> None:
        self.counts[kind] += 1
        if len(self.drifts) < MAX_LISTED_DRIFTS:
            self.drifts.append({"subject_id": subject_id, "kind": kind})

    def error(self, reason: str) -> None:
        self.errors += 1
        reason = reason[:REASON_CHARS]
        if reason in self.error_reasons or len(self.error_reasons) < MAX_REASONS:
            self.error_reasons[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"purposes": list(self.purposes), "checked": self.checked, "held": self.held,
                "drifts": list(self.drifts), **{kind: self.counts[kind] for kind in DRIFT_KINDS},
                "errors": self.errors, "error_reasons": dict(self.error_reasons), "repaired": self.repaired,
                "stopped": self.stopped}


@dataclass
class ReconcileReport:
    """A run: per system, what was checked and found; ``skipped`` names the connected
    systems that could not be reconciled, with why."""

    id: str
    started_at: dt.datetime
    repair: bool
    systems: dict[str, SystemReport] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    finished_at: dt.datetime | None = None

    def totals(self) -> dict[str, int]:
        systems = self.systems.values()
        out = {"systems": len(self.systems), "checked": sum(s.checked for s in systems),
               "held": sum(s.held for s in systems), "drifts": sum(sum(s.counts.values()) for s in systems)}
        out.update({kind: sum(s.counts[kind] for s in systems) for kind in DRIFT_KINDS})
        out.update({"errors": sum(s.errors for s in systems), "repaired": sum(s.repaired for s in systems)})
        return out

    def body(self) -> dict[str, Any]:
        """What is stored: totals, each system's report and the skipped systems."""
        return {"totals": self.totals(), "systems": {name: s.as_dict() for name, s in self.systems.items()},
                "skipped": dict(self.skipped)}

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started_at": as_json_time(self.started_at),
                "finished_at": as_json_time(self.finished_at), "repair": self.repair, **self.body()}


def run_view(run: ReconcileRunRecord) -> dict[str, Any]:
    """A stored run as the API shows it (the same shape as :meth:`ReconcileReport.as_dict`)."""
    return {"id": run.id, "started_at": as_json_time(run.started_at), "finished_at": as_json_time(run.finished_at),
            "repair": run.repair, "totals": run.report.get("totals", {}), "systems": run.report.get("systems", {}),
            "skipped": run.report.get("skipped", {})}


def can_tell_opt_in(connector: Connector) -> bool:
    """Whether the connector's type implements :meth:`Connector.opt_in`."""
    return type(connector).opt_in is not Connector.opt_in


@dataclass
class _Person:
    subject: SubjectRecord
    email: str
    states: dict[str, ConsentStateRecord]


class Reconciler:
    """Compares connected systems' opt-in state with the ledger (see the module's docstring).

    ``connectors`` are the built connectors by name (tests, the task runner's); by default
    every connector of the policy is built for the run and closed after it.
    """

    def __init__(self, ctx: PrivacyContext, connectors: dict[str, Connector] | None = None) -> None:
        self.ctx = ctx
        self._given = connectors

    # --- which systems ----------------------------------------------------------------

    def _purposes(self, definition: ConnectorDef) -> list[str]:
        configured = definition.settings.get("purposes")
        if configured:
            return sorted(str(p) for p in configured)
        catalogue = load_catalogue(self.ctx.database)
        return sorted(code for code, p in catalogue.purposes.items() if p.legal_basis == "consent")

    def plan(self, connectors: dict[str, Connector]) -> tuple[dict[str, Connector], dict[str, str]]:
        """The systems to reconcile, and the others with why not."""
        chosen: dict[str, Connector] = {}
        skipped: dict[str, str] = {}
        for definition in self.ctx.policy.connectors:
            connector = connectors.get(definition.name)
            if connector is None:
                skipped[definition.name] = "not built"
            elif not can_tell_opt_in(connector):
                skipped[definition.name] = f"a {definition.type} system cannot tell its opt-in state"
            elif "consent" not in operations_of(definition):
                skipped[definition.name] = "does not take the consent operation"
            elif not self._purposes(definition):
                skipped[definition.name] = "no purpose with the legal basis consent"
            else:
                chosen[definition.name] = connector
        return chosen, skipped

    def reconcilable(self) -> list[str]:
        """The names of the connected systems a run would compare (none built, nothing called)."""
        names = []
        for definition in self.ctx.policy.connectors:
            cls = CONNECTOR_CLASSES.get(definition.type)
            if (cls is not None and cls.opt_in is not Connector.opt_in and "consent" in operations_of(definition)
                    and self._purposes(definition)):
                names.append(definition.name)
        return names

    # --- the run ----------------------------------------------------------------------

    def run(self, repair: bool, now: dt.datetime, actor: str = "system:reconcile") -> ReconcileReport:
        """Compare every reconcilable system with the ledger; with ``repair`` plan a consent
        task for each ``subscribed_but_withdrawn`` drift (never for ``withdrawn_but_granted``:
        opt-ins are not pushed, only reported). Stores and audits the report."""
        report = ReconcileReport(id=str(uuid.uuid4()), started_at=now, repair=repair)
        connectors = build_all(self.ctx.policy) if self._given is None else self._given
        try:
            chosen, report.skipped = self.plan(connectors)
            definitions = {d.name: d for d in self.ctx.policy.connectors}
            for name in chosen:
                report.systems[name] = SystemReport(purposes=self._purposes(definitions[name]))
            if chosen:
                self._walk(chosen, definitions, report, repair, now)
        finally:
            if self._given is None:
                for connector in connectors.values():
                    try:
                        connector.close()
                    except Exception:
                        log.exception("reconcile: closing connector %s failed", connector.name)
        report.finished_at = self.ctx.clock()
        self._store(report, actor)
        return report

    def _walk(self, chosen: dict[str, Connector], definitions: dict[str, ConnectorDef], report: ReconcileReport,
              repair: bool, now: dt.datetime) -> None:
        purposes = sorted({p for name in chosen for p in report.systems[name].purposes})
        failing: Counter[str] = Counter()  # failed look-ups in a row, per system, before any answer
        answered: set[str] = set()
        after = ""
        while True:
            batch = self._batch(after, purposes)
            if batch is None:
                return
            after, people = batch
            for name, connector in chosen.items():
                system = report.systems[name]
                if system.stopped:
                    continue
                to_repair: list[_Person] = []
                for person in people:
                    try:
                        outcome = self._look_up(connector, person.email)
                    except NotImplementedError:
                        system.stopped = "this system cannot tell its opt-in state"
                        break
                    system.checked += 1
                    if isinstance(outcome, str):
                        system.error(outcome)
                        failing[name] += 1
                        if name not in answered and failing[name] >= STOP_AFTER_ERRORS:
                            system.stopped = (f"{STOP_AFTER_ERRORS} look-ups failed in a row without one answer; "
                                              "not asked further in this run")
                            log.warning("reconcile: %s %s", name, system.stopped)
                            break
                        continue
                    answered.add(name)
                    if outcome is None:
                        continue
                    system.held += 1
                    allowed = _allowed(person, system.purposes)
                    if outcome and not allowed:
                        system.drift(person.subject.id, SUBSCRIBED_BUT_WITHDRAWN)
                        to_repair.append(person)
                    elif not outcome and allowed:
                        system.drift(person.subject.id, WITHDRAWN_BUT_GRANTED)
                if repair and to_repair:
                    system.repaired += self._repair(definitions[name], system.purposes, to_repair, now)

    def _batch(self, after: str, purposes: list[str]) -> tuple[str, list[_Person]] | None:
        """The next batch of subjects after ``after`` with their e-mail and states (None at the end)."""
        with self.ctx.database.unit_of_work() as session:
            subjects = SubjectRepository(session).after(after, BATCH)
            if not subjects:
                return None
            live = [s for s in subjects if s.wrapped_key is not None]  # an erased subject's key is gone
            ids = [s.id for s in live]
            emails = SubjectRepository(session).field_of(ids, "email")
            states = ConsentStateRepository(session).of_subjects(ids, purposes)
        people = []
        for subject in live:
            sealed = emails.get(subject.id)
            if sealed is None:
                continue
            try:
                email = self.ctx.crypto.decrypt_field(self.ctx.crypto.data_key(subject), subject.id, "email", sealed)
            except CryptoError:
                continue  # erased meanwhile, or unreadable: nothing to compare
            people.append(_Person(subject, email, states.get(subject.id, {})))
        return subjects[-1].id, people

    @staticmethod
    def _look_up(connector: Connector, email: str) -> bool | str | None:
        """The system's answer, or the reason the look-up failed (never personal data);
        :class:`NotImplementedError` when the connector cannot tell after all."""
        try:
            return connector.opt_in(email)
        except ConnectorError as exc:
            return exc.reason
        except NotImplementedError:
            raise
        except Exception as exc:  # a connector bug must not end the walk, nor leak what it held
            return f"the look-up failed ({type(exc).__name__})"

    def _repair(self, definition: ConnectorDef, purposes: list[str], people: list[_Person], now: dt.datetime) -> int:
        """Plan a consent task (withdrawn) for each person the system has subscribed, unless
        one is waiting already or our state changed to allowed since it was read."""
        planned = 0
        with self.ctx.database.unit_of_work() as session:
            tasks = TaskRepository(session)
            fresh_states = ConsentStateRepository(session).of_subjects([p.subject.id for p in people], purposes)
            for person in people:
                current = SubjectRepository(session).get(person.subject.id)
                if current is None or current.wrapped_key is None:
                    continue  # erased meanwhile
                now_person = _Person(current, person.email, fresh_states.get(person.subject.id, {}))
                if _allowed(now_person, purposes):
                    continue
                if tasks.has_open(definition.name, person.subject.id, "consent"):
                    continue
                tasks.add([sealed_task(self.ctx.crypto, definition, "consent", {
                    "email": person.email, "purposes": {p: "withdrawn" for p in purposes}},
                    now, subject_id=person.subject.id)])
                planned += 1
        return planned

    def _store(self, report: ReconcileReport, actor: str) -> None:
        assert report.finished_at is not None
        totals = report.totals()
        with self.ctx.database.unit_of_work() as session:
            ReconcileRunRepository(session).add(ReconcileRunRecord(
                id=report.id, started_at=report.started_at, finished_at=report.finished_at, repair=report.repair,
                report=report.body()))
            append_audit(session, actor, ACTION, report.finished_at, target=report.id, details={
                "repair": report.repair, **totals,
                "systems": {name: {"checked": s.checked, "held": s.held, "drifts": sum(s.counts.values()),
                                   "errors": s.errors, "repaired": s.repaired}
                            for name, s in report.systems.items()}})
        log.info("reconcile %s: %s", report.id, totals)


def recent_runs(ctx: PrivacyContext, limit: int = KEPT_RUNS) -> list[dict[str, Any]]:
    """The newest stored runs, newest first, as the API shows them."""
    with ctx.database.unit_of_work() as session:
        return [run_view(r) for r in ReconcileRunRepository(session).newest(limit)]


def _allowed(person: _Person, purposes: list[str]) -> bool:
    """Whether we allow marketing: any of ``purposes`` granted, and the subject not restricted."""
    if person.subject.restricted:
        return False
    return any(s.status == "granted" for p, s in person.states.items() if p in purposes)
