"""What happens to a request after it is closed: its personal details are forgotten after
90 days, and what an erasure kept for a legal hold is erased when the hold ends.

The request's dates, status and audit trail stay as proof that it was handled.
"""
from __future__ import annotations

import datetime as dt

from privacy.context import PrivacyContext
from privacy.ledger import append_audit
from privacy.requests import fulfilment, records
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.states import CLOSED
from privacy.storage.repositories.requests import RequestRepository

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
        ids = RequestRepository(self.session).ids_keyed_closed_before(CLOSED, cutoff)
        self.session.rollback()
        for request_id in ids:
            with self.database.unit_of_work() as session:
                records.load(session, request_id, lock=True)
                RequestRepository(session).forget(request_id)
                append_audit(session, LOCAL_SYSTEM, "request.details_destroyed", now, target=request_id)
        return len(ids)

    def release_legal_holds(self, now: dt.datetime) -> dict[str, int]:
        """Erase what erasures kept for a legal hold once the hold has ended, and destroy its keys."""
        with self.database.unit_of_work() as session:
            return fulfilment.release_expired_holds(session, now)
