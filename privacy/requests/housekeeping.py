"""What happens to a request after it is closed: its personal details are forgotten after
90 days, and what an erasure kept for a legal hold is erased when the hold ends.

The request's dates, status and audit trail stay as proof that it was handled.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from privacy.context import PrivacyContext
from privacy.ledger import append_audit
from privacy.requests import fulfilment, records
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.states import CLOSED
from privacy.storage.models import DataRequest, RequestTask

DETAILS_KEPT = dt.timedelta(days=90)  # after closing: time to answer follow-up questions, then forget


class HousekeepingService:
    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.session = ctx.database.session

    def forget_closed(self, now: dt.datetime, after: dt.timedelta = DETAILS_KEPT) -> int:
        """Destroy the key of requests closed longer than ``after`` ago: the address, changes
        and answers they held become unreadable; the request's dates, status and audit trail
        stay as proof that it was handled."""
        cutoff = now - after
        ids = list(self.session.scalars(select(DataRequest.id).where(
            DataRequest.status.in_(list(CLOSED)), DataRequest.wrapped_key.is_not(None),
            func.coalesce(DataRequest.completed_at, DataRequest.updated_at) <= cutoff)))
        self.session.rollback()
        for request_id in ids:
            with self.database.unit_of_work() as session:
                request = records.load(session, request_id, lock=True)
                request.wrapped_key = request.master_key_id = request.sealed = None
                session.execute(update(RequestTask).where(RequestTask.request_id == request_id).values(result=None))
                append_audit(session, LOCAL_SYSTEM, "request.details_destroyed", now, target=request_id)
        return len(ids)

    def release_legal_holds(self, now: dt.datetime) -> dict[str, int]:
        """Erase what erasures kept for a legal hold once the hold has ended, and destroy its keys."""
        with self.database.unit_of_work() as session:
            return fulfilment.release_expired_holds(session, now)
