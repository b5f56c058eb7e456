"""Retention sweeps: ``retention_runs`` and ``anonymised_records``, and the set-based
selection of subjects a retention rule concerns (``subjects`` joined to ``consent_states``).

The selection reads one id range of subjects at a time (``after`` < id <= ``last``): a
sweep walks the table in batches and never loads it whole.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, exists, false, insert, literal_column, or_, select, update

from privacy.storage.lists import in_list
from privacy.storage.models import ConsentState, Subject, SubjectField
from privacy.storage.retention_models import AnonymisedRecord, RetentionRun
from privacy.storage.statements import AnyTransaction, as_transaction

_S = Subject.__table__
_SF = SubjectField.__table__
_CS = ConsentState.__table__
_R = RetentionRun.__table__
_A = AnonymisedRecord.__table__

RUN_COLUMNS = (_R.c.id, _R.c.started_at, _R.c.finished_at, _R.c.as_of, _R.c.dry_run, _R.c.actor, _R.c.status,
               _R.c.cursor, _R.c.summary)
IN_RANGE = (_S.c.id > bindparam("after"), _S.c.id <= bindparam("last"))
# The subject's own times: the rule concerns subjects that have a state for the purpose.
BY_SUBJECT_TIME = {
    clock: select(_S.c.id).join(_CS, _CS.c.subject_id == _S.c.id).where(
        *IN_RANGE, _CS.c.purpose == bindparam("purpose"), column <= bindparam("cutoff"))
    for clock, column in (("collection", _S.c.created_at), ("last_activity", _S.c.last_activity_at))}
# The state's own time, for the statuses that start the clock (the states' own key range:
# no join).
BY_STATE_TIME = select(_CS.c.subject_id.label("id")).where(
    _CS.c.subject_id > bindparam("after"), _CS.c.subject_id <= bindparam("last"),
    _CS.c.purpose == bindparam("purpose"), _CS.c.status.in_(bindparam("statuses", expanding=True)),
    _CS.c.recorded_at <= bindparam("cutoff"))
STATES_OF = select(_CS.c.subject_id, _CS.c.purpose, _CS.c.status, _CS.c.recorded_at, _CS.c.granted_at).where(
    in_list(_CS.c.subject_id, "sids"))
INSERT_RUN = insert(_R)
UPDATE_RUN = update(_R).where(_R.c.id == bindparam("b_id")).values(
    status=bindparam("v_status"), cursor=bindparam("v_cursor"), summary=bindparam("v_summary"),
    finished_at=bindparam("v_finished_at"))
NEWEST_RUNNING = select(*RUN_COLUMNS).where(_R.c.status == literal_column("'running'"),
                                            _R.c.dry_run == bindparam("dry")).order_by(
    _R.c.started_at.desc(), _R.c.id.desc()).limit(1)
NEWEST = select(*RUN_COLUMNS).order_by(_R.c.started_at.desc(), _R.c.id.desc()).limit(bindparam("n"))
INSERT_ANONYMISED = insert(_A)


@dataclass(frozen=True)
class Keeper:
    """A purpose keeps ``fields`` while the subject's state for it has a status in
    ``statuses`` (or, with ``negate``, one not in them)."""

    purpose: str
    fields: tuple[str, ...]
    statuses: tuple[str, ...]
    negate: bool


@functools.lru_cache(maxsize=8)  # one statement per policy
def _unneeded_fields(keepers: tuple[Keeper, ...]) -> Any:
    """Subjects in the id range with a stored field that no state of theirs keeps."""
    terms = []
    for k in keepers:
        status = _CS.c.status.not_in(k.statuses) if k.negate else _CS.c.status.in_(k.statuses)
        terms.append(and_(_CS.c.purpose == k.purpose, _SF.c.name.in_(k.fields),
                          *([status] if k.statuses or not k.negate else [])))
    # The states' range is repeated inside, so that the planner may read both ranges once
    # and join them (rather than probe the states once per stored field).
    kept = exists().where(_CS.c.subject_id == _SF.c.subject_id, _CS.c.subject_id > bindparam("after"),
                          _CS.c.subject_id <= bindparam("last"), or_(*terms) if terms else false())
    return select(_SF.c.subject_id).where(_SF.c.subject_id > bindparam("after"), _SF.c.subject_id <= bindparam("last"),
                                          ~kept).distinct()


@dataclass(slots=True)
class RetentionRunRecord:
    """A sweep as stored; ``summary`` holds counts only."""

    id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    as_of: dt.datetime
    dry_run: bool
    actor: str
    status: str
    cursor: str | None
    summary: dict[str, Any]


@dataclass(slots=True)
class StateRow:
    """What a sweep reads of a consent state."""

    subject_id: str
    purpose: str
    status: str
    recorded_at: dt.datetime
    granted_at: dt.datetime | None


def _run(row: Any) -> RetentionRunRecord:
    return RetentionRunRecord(row.id, row.started_at, row.finished_at, row.as_of, bool(row.dry_run), row.actor,
                              row.status, row.cursor, json.loads(row.summary) if row.summary else {})


class RetentionRepository:
    """The statements of retention sweeps."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    # --- selection, one id range at a time ---------------------------------------------

    def due_by_subject_time(self, clock: str, purpose: str, cutoff: dt.datetime, after: str, last: str) -> set[str]:
        """Subjects in the range with a state for ``purpose`` whose ``clock`` time is at or before ``cutoff``."""
        rows = self.tx.all(BY_SUBJECT_TIME[clock], {"purpose": purpose, "cutoff": cutoff, "after": after,
                                                    "last": last})
        return {r.id for r in rows}

    def due_by_state_time(self, purpose: str, statuses: tuple[str, ...], cutoff: dt.datetime, after: str,
                          last: str) -> set[str]:
        """Subjects in the range whose state of ``purpose`` has one of ``statuses`` since ``cutoff`` or before."""
        rows = self.tx.all(BY_STATE_TIME, {"purpose": purpose, "statuses": list(statuses), "cutoff": cutoff,
                                           "after": after, "last": last})
        return {r.id for r in rows}

    def unneeded_in_range(self, keepers: tuple[Keeper, ...], after: str, last: str) -> set[str]:
        """Subjects in the range holding a field that no purpose they have a keeping state
        for lists (minimisation candidates; the sweep decides on each)."""
        stmt = _unneeded_fields(keepers)
        return {r.subject_id for r in self.tx.all(stmt, {"after": after, "last": last})}

    def states_of(self, subject_ids: list[str]) -> dict[str, dict[str, StateRow]]:
        """Each subject's states by purpose."""
        out: dict[str, dict[str, StateRow]] = {}
        for r in self.tx.all(STATES_OF, {"sids": subject_ids}):
            out.setdefault(r.subject_id, {})[r.purpose] = StateRow(*r)
        return out

    # --- runs -------------------------------------------------------------------------

    def add_run(self, run: RetentionRunRecord) -> None:
        self.tx.execute(INSERT_RUN, [{"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
                                      "as_of": run.as_of, "dry_run": run.dry_run, "actor": run.actor,
                                      "status": run.status, "cursor": run.cursor,
                                      "summary": json.dumps(run.summary, sort_keys=True)}])

    def save_run(self, run: RetentionRunRecord) -> None:
        """Store the run's status, cursor, summary and end."""
        self.tx.execute(UPDATE_RUN, {"b_id": run.id, "v_status": run.status, "v_cursor": run.cursor,
                                     "v_summary": json.dumps(run.summary, sort_keys=True),
                                     "v_finished_at": run.finished_at})

    def newest_running(self, dry_run: bool) -> RetentionRunRecord | None:
        row = self.tx.first(NEWEST_RUNNING, {"dry": dry_run})
        return None if row is None else _run(row)

    def newest(self, limit: int) -> list[RetentionRunRecord]:
        """Up to ``limit`` runs, newest first."""
        return [_run(r) for r in self.tx.all(NEWEST, {"n": limit})]

    # --- anonymisation ----------------------------------------------------------------

    def add_anonymised(self, rows: list[dict[str, Any]]) -> None:
        """Store anonymised records: each a dict of ``anonymised_at``, ``birth_year``,
        ``postal_prefix``, ``country``, ``purposes`` (a list) and ``rule``."""
        if rows:
            self.tx.execute(INSERT_ANONYMISED, [{**r, "purposes": json.dumps(r["purposes"], sort_keys=True)}
                                                for r in rows])
