"""Which retention rules fire, and what each subject then loses.

A purpose's rule ``{period_days, after, action}`` fires for a subject at ``as_of`` when its
reference time plus ``period_days`` is at or before ``as_of``:

``collection`` / ``last_activity``
    the subject's ``created_at`` / ``last_activity_at``, for subjects with a state for the purpose;
``withdrawal``
    the state's ``recorded_at`` when it is ``withdrawn`` or ``declined``;
``consent_expiry`` (also spelt ``expiry``)
    the state's ``recorded_at`` when it is ``expired``.

Candidates are selected in SQL, one statement per rule and id range of subjects
(:meth:`RetentionRepository.due_by_subject_time`, :meth:`~RetentionRepository.due_by_state_time`).

When a purpose's rule fires the purpose lapses. If a purpose with a basis remains (a
``granted`` state, or a non-consent purpose whose state is not withdrawn, declined or
expired, and whose own rule has not fired) the subject stays and loses only the fields
no *kept* purpose and no legal hold needs (kept: has a basis, is ``pending``, or still
runs its own retention period). Otherwise the subject-level action applies; when several
rules fire at once ``delete`` beats ``anonymise`` (it keeps less), and among equal actions
the purpose first by code is named as the rule.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from privacy.policy.file import LegalHold, PurposeDef
from privacy.storage.repositories.retention import Keeper, RetentionRepository, StateRow

STATE_CLOCKS = {"withdrawal": ("withdrawn", "declined"), "consent_expiry": ("expired",), "expiry": ("expired",)}
SUBJECT_CLOCKS = ("collection", "last_activity")
ENDED = ("withdrawn", "declined", "expired")
ACTION_ORDER = ("delete", "anonymise")  # the first that any fired rule names wins
UNASSIGNED = "(none)"  # counts of fields removed that no lapsed purpose of the subject listed


@dataclass(frozen=True)
class Rule:
    purpose: str
    period_days: int
    after: str
    action: str

    def cutoff(self, as_of: dt.datetime) -> dt.datetime:
        """Reference times at or before this make the rule fire at ``as_of`` (the earliest
        time there is when ``as_of`` is too early to count back from)."""
        try:
            return as_of - dt.timedelta(days=self.period_days)
        except OverflowError:
            return dt.datetime.min.replace(tzinfo=dt.UTC)


def rules_of(purposes: Mapping[str, PurposeDef]) -> list[Rule]:
    """The retention rule of each purpose that declares one, by purpose code."""
    return [Rule(code, int(p.retention["period_days"]), p.retention["after"], p.retention["action"])
            for code, p in sorted(purposes.items()) if p.retention]


def fired_in_range(repo: RetentionRepository, rules: list[Rule], as_of: dt.datetime, after: str, last: str
                   ) -> dict[str, set[str]]:
    """Per subject in the id range (``after``, ``last``], the purposes whose rule fires."""
    fired: dict[str, set[str]] = {}
    for rule in rules:
        if rule.after in SUBJECT_CLOCKS:
            due = repo.due_by_subject_time(rule.after, rule.purpose, rule.cutoff(as_of), after, last)
        elif rule.after in STATE_CLOCKS:
            due = repo.due_by_state_time(rule.purpose, STATE_CLOCKS[rule.after], rule.cutoff(as_of), after, last)
        else:
            continue
        for subject_id in due:
            fired.setdefault(subject_id, set()).add(rule.purpose)
    return fired


@dataclass
class Decision:
    """What a sweep does to one subject: a subject-level ``action`` (with the ``rule`` that
    chose it), or the fields ``drop`` that no kept purpose or hold needs."""

    fired: set[str]
    action: str | None = None
    rule: str | None = None
    drop: set[str] = field(default_factory=set)
    blame: dict[str, str] = field(default_factory=dict)  # dropped field -> the lapsed purpose counted for it


def has_basis(purpose: PurposeDef, state: StateRow, fired: set[str]) -> bool:
    if purpose.code in fired:
        return False
    if purpose.needs_consent:
        return state.status == "granted"
    return state.status not in ENDED


def kept(purpose: PurposeDef, state: StateRow, fired: set[str]) -> bool:
    """Whether the purpose still keeps its fields: a basis, a pending consent, or its own
    retention period still running."""
    if purpose.code in fired:
        return False
    return has_basis(purpose, state, fired) or state.status == "pending" or bool(purpose.retention)


def keepers(purposes: Mapping[str, PurposeDef]) -> tuple[Keeper, ...]:
    """:func:`kept` as statuses, for the selection in SQL of subjects who may lose a field
    (a purpose whose own rule fired is left to :func:`fired_in_range`): a purpose with a
    retention rule keeps in every status, a consent purpose while granted or pending, any
    other purpose while its state has not ended."""
    out = []
    for code, p in sorted(purposes.items()):
        if p.retention:
            out.append(Keeper(code, tuple(sorted(p.fields)), (), True))
        elif p.needs_consent:
            out.append(Keeper(code, tuple(sorted(p.fields)), ("granted", "pending"), False))
        else:
            out.append(Keeper(code, tuple(sorted(p.fields)), ENDED, True))
    return tuple(k for k in out if k.fields)


def hold_fields(holds: tuple[LegalHold, ...], purposes: Mapping[str, PurposeDef], had: set[str],
                last_activity_at: dt.datetime, as_of: dt.datetime) -> set[str]:
    """The fields a legal hold that covers the subject still needs at ``as_of``."""
    return {name for hold in holds if hold.covers(dict(purposes), had)
            and last_activity_at + dt.timedelta(days=hold.period_days) > as_of for name in hold.fields}


def decide(purposes: Mapping[str, PurposeDef], rules: Mapping[str, Rule], states: Mapping[str, StateRow],
           fired: set[str], stored: set[str], held: set[str]) -> Decision:
    """The decision for one subject (see the module's docstring); ``held`` are the fields a
    legal hold needs, kept in place while the subject stays."""
    known = {code: s for code, s in states.items() if code in purposes}
    decision = Decision(fired=set(fired))
    if not known:
        return decision
    if fired and not any(has_basis(purposes[c], s, fired) for c, s in known.items()):
        actions = {rules[c].action for c in fired if c in rules}
        decision.action = next(a for a in ACTION_ORDER if a in actions)
        decision.rule = min(c for c in fired if c in rules and rules[c].action == decision.action)
        return decision
    needed = {f for c, s in known.items() if kept(purposes[c], s, fired) for f in purposes[c].fields}
    decision.drop = stored - needed - held
    lapsed = sorted(c for c, s in known.items() if not kept(purposes[c], s, fired))
    for name in decision.drop:
        decision.blame[name] = next((c for c in lapsed if name in purposes[c].fields), UNASSIGNED)
    return decision
