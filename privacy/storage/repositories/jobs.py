"""Claimed runs of scheduled jobs (``job_runs``). Every statement on the table is here.

A run is claimed by inserting its (job, tick) row with ``ON CONFLICT DO NOTHING``: the
process whose insert took the row runs the job, any other (a second scheduler, or a
leader that lost its lock a moment ago) finds it there and does not.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from privacy.storage.retention_models import JobRun
from privacy.storage.statements import AnyTransaction, as_transaction

_J = JobRun.__table__
COLUMNS = (_J.c.job, _J.c.tick, _J.c.owner, _J.c.started_at, _J.c.finished_at, _J.c.outcome, _J.c.count,
           _J.c.error)
FINISH = update(_J).where(_J.c.job == bindparam("b_job"), _J.c.tick == bindparam("b_tick")).values(
    finished_at=bindparam("b_now"), outcome=bindparam("b_outcome"), count=bindparam("b_count"),
    error=bindparam("b_error"))
_NEWEST = select(_J.c.job, func.max(_J.c.tick).label("tick")).group_by(_J.c.job).subquery()
LAST_RUNS = select(*COLUMNS).join(_NEWEST, (_NEWEST.c.job == _J.c.job) & (_NEWEST.c.tick == _J.c.tick))
DID_SINCE = select(_J.c.tick).where(_J.c.job == bindparam("job"), _J.c.started_at >= bindparam("since"),
                                    _J.c.outcome == "ok", _J.c.count > 0).limit(1)
OF_JOB = select(*COLUMNS).where(_J.c.job == bindparam("job")).order_by(_J.c.tick)


@dataclass(slots=True)
class JobRunRecord:
    """One claimed run: ``outcome`` is ``running`` until it ends ``ok`` or ``failed``."""

    job: str
    tick: dt.datetime
    owner: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    count: int | None
    error: str | None


def _insert(dialect: Any) -> Any:
    """The dialect's ``INSERT … ON CONFLICT DO NOTHING RETURNING job`` on ``job_runs`` (the
    row count of such an insert is not reliable across drivers; a returned row is)."""
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    return insert(_J).on_conflict_do_nothing(index_elements=["job", "tick"]).returning(_J.c.job)


class JobRunRepository:
    """The statements of ``job_runs``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    def claim(self, job: str, tick: dt.datetime, owner: str, now: dt.datetime) -> bool:
        """Claim the run of ``job`` at ``tick``; True if this call inserted its row."""
        row = self.tx.first(_insert(self.tx.dialect), {  # type: ignore[attr-defined]
            "job": job, "tick": tick, "owner": owner, "started_at": now, "finished_at": None,
            "outcome": "running", "count": None, "error": None})
        return row is not None  # a row comes back only from the insert that took it

    def finish(self, job: str, tick: dt.datetime, now: dt.datetime, count: int | None, error: str | None) -> None:
        """Record how the claimed run ended: ``ok`` with its count, or ``failed`` with its error."""
        self.tx.execute(FINISH, {"b_job": job, "b_tick": tick, "b_now": now, "b_count": count,
                                 "b_outcome": "failed" if error is not None else "ok",
                                 "b_error": None if error is None else error[:500]})

    def last_runs(self) -> dict[str, JobRunRecord]:
        """Each job's newest claimed run, by job."""
        return {r.job: JobRunRecord(*r) for r in self.tx.all(LAST_RUNS)}

    def did_something_since(self, job: str, since: dt.datetime) -> bool:
        """Whether a run of ``job`` started at or after ``since`` ended ``ok`` with a count above 0."""
        return self.tx.first(DID_SINCE, {"job": job, "since": since}) is not None

    def of_job(self, job: str) -> list[JobRunRecord]:
        """Every claimed run of ``job``, oldest tick first."""
        return [JobRunRecord(*r) for r in self.tx.all(OF_JOB, {"job": job})]
