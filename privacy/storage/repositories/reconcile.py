"""Reconciliation runs (``reconcile_runs``): each run's report, for officers to read.

A report holds counts and pseudonymous subject ids only (see ``privacy.tasks.reconcile``).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select

from privacy.storage.models import ReconcileRun
from privacy.storage.statements import AnyTransaction, as_transaction

_R = ReconcileRun.__table__

INSERT_RUN = insert(_R)
NEWEST = select(_R.c.id, _R.c.started_at, _R.c.finished_at, _R.c.repair, _R.c.report).order_by(
    _R.c.started_at.desc(), _R.c.id.desc()).limit(bindparam("n"))


@dataclass(slots=True)
class ReconcileRunRecord:
    id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    repair: bool
    report: dict[str, Any]


class ReconcileRunRepository:
    """The statements of ``reconcile_runs``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    def add(self, run: ReconcileRunRecord) -> None:
        self.tx.execute(INSERT_RUN, [{"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
                                      "repair": run.repair, "report": json.dumps(run.report, sort_keys=True)}])

    def newest(self, limit: int) -> list[ReconcileRunRecord]:
        """Up to ``limit`` runs, newest first."""
        return [ReconcileRunRecord(r.id, r.started_at, r.finished_at, bool(r.repair), json.loads(r.report))
                for r in self.tx.all(NEWEST, {"n": limit})]
