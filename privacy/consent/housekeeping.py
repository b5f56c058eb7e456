"""Scheduled consent work: lapsed consents expire, stale rows are forgotten."""
from __future__ import annotations

import datetime as dt

from privacy.consent import changes
from privacy.context import PrivacyContext
from privacy.policy.catalogue import load_catalogue
from privacy.storage.repositories.confirmations import ConfirmationRepository
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.idempotency import IdempotencyRepository
from privacy.tasks.planning import ConsentFanout

IDEMPOTENCY_TTL = dt.timedelta(hours=24)


class ConsentHousekeeping:
    """``ConsentService.expire`` and the ``purge_*`` clean-ups (run by the scheduler)."""

    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self.database = ctx.database

    def expire(self, now: dt.datetime, batch_size: int = 1000) -> int:
        """Append an ``expired`` event for every consent past its validity; returns a count."""
        catalogue = load_catalogue(self.database)
        fanout = ConsentFanout.of(self.ctx)
        total = 0
        for purpose in catalogue.purposes.values():
            if not purpose.consent_valid_days:
                continue
            cutoff = now - dt.timedelta(days=purpose.consent_valid_days)
            while True:
                with self.database.unit_of_work() as session:
                    states = ConsentStateRepository(session).granted_before(purpose.code, cutoff, batch_size)
                    changes.move(session, load_catalogue(self.database), states, "expired", "expired",
                                 {"channel": "scheduler", "form": "consent-expiry"}, now, fanout)
                total += len(states)
                if len(states) < batch_size:
                    break
        return total

    def purge_idempotency_records(self, now: dt.datetime) -> int:
        """Forget stored answers to Idempotency-Keys older than ``IDEMPOTENCY_TTL`` (they hold
        no personal data); a repeat after that is recorded as a new request."""
        with self.database.unit_of_work() as session:
            return IdempotencyRepository(session).purge(now - IDEMPOTENCY_TTL)

    def purge_confirmations(self, now: dt.datetime) -> int:
        """Drop the rows of expired double opt-in links; pending consents stay pending.

        A used link's row is kept until the link expires: it is what refuses a second click.
        An expired link is refused by its own date, stored or not."""
        with self.database.unit_of_work() as session:
            return ConfirmationRepository(session).purge_expired(now)
