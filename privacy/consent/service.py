"""ConsentService: the one door to consent for the API, the scheduler and scripts.

It hands each call to the collaborator of its capability:

- recording a sign-up or preference change: :class:`privacy.consent.recording.Recorder`;
- the mailed links (confirm a double opt-in, withdraw in one click):
  :class:`privacy.consent.links.ConsentLinks`;
- reading states, history, who may be contacted, an officer's look-up:
  :class:`privacy.consent.queries.ConsentQueries`;
- expiry and clean-ups: :class:`privacy.consent.housekeeping.ConsentHousekeeping`;
- withdrawals inside another transaction (objections, erasures): :mod:`privacy.consent.changes`.

The statements they run are the repositories' (:mod:`privacy.storage.repositories`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from privacy.consent import changes
from privacy.consent.housekeeping import IDEMPOTENCY_TTL, ConsentHousekeeping
from privacy.consent.links import ConsentLinks
from privacy.consent.queries import ConsentQueries, is_uuid
from privacy.consent.recording import Recorder, RecordResult
from privacy.consent.validation import ConsentCommand
from privacy.context import PrivacyContext
from privacy.policy.catalogue import load_catalogue
from privacy.storage.repositories.consent_states import CHECK_CHUNK
from privacy.storage.statements import AnyTransaction
from privacy.tasks.planning import ConsentFanout

__all__ = ["CHECK_CHUNK", "IDEMPOTENCY_TTL", "ConsentCommand", "ConsentService", "RecordResult", "is_uuid"]


class ConsentService:
    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx

    def record(self, cmd: ConsentCommand, now: dt.datetime, idempotency: tuple[str, str] | None = None
               ) -> RecordResult:
        """Record a sign-up or preference change (see :meth:`Recorder.record`)."""
        return Recorder(self.ctx).record(cmd, now, idempotency)

    def confirm(self, token: str, now: dt.datetime) -> dict[str, Any]:
        """Follow a double opt-in link: pending purposes become granted."""
        return ConsentLinks(self.ctx).confirm(token, now)

    def withdraw_by_link(self, subject_id: str, purpose: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """One-click withdrawal from a mailed link (RFC 8058)."""
        return ConsentLinks(self.ctx).withdraw_by_link(subject_id, purpose, token, now)

    def unsubscribe_link(self, subject_id: str, purpose: str) -> dict[str, str]:
        """The one-click withdraw link of ``purpose`` for another system's mails (RFC 8058)."""
        return ConsentLinks(self.ctx).unsubscribe_link(subject_id, purpose)

    def withdraw_for(self, session: AnyTransaction, subject_id: str, purposes: list[str] | None,
                     source: dict[str, Any], now: dt.datetime) -> list[str]:
        """Withdraw the subject's active consents for ``purposes`` (all with None) inside the
        caller's transaction; returns the purposes withdrawn."""
        return changes.withdraw(session, load_catalogue(self.ctx.database), subject_id, purposes, source, now,
                                ConsentFanout.of(self.ctx))

    def states(self, subject_id: str, now: dt.datetime) -> dict[str, Any]:
        return ConsentQueries(self.ctx).states(subject_id, now)

    def history(self, subject_id: str) -> dict[str, Any]:
        return ConsentQueries(self.ctx).history(subject_id)

    def check(self, purpose_code: str, now: dt.datetime, emails: list[str] | None = None,
              subject_ids: list[str] | None = None, unsubscribe_links: bool = False) -> dict[str, Any]:
        """Who may be contacted for a purpose (up to 100,000 e-mails or subject ids), with
        the one-click withdraw link of each allowed one on request."""
        return ConsentQueries(self.ctx).check(purpose_code, now, emails, subject_ids, unsubscribe_links)

    def find_by_email(self, email: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """An officer looks a person up (audited)."""
        return ConsentQueries(self.ctx).find_by_email(email, actor, now)

    def expire(self, now: dt.datetime, batch_size: int = 1000) -> int:
        """Append an ``expired`` event for every consent past its validity; returns a count."""
        return ConsentHousekeeping(self.ctx).expire(now, batch_size)

    def purge_idempotency_records(self, now: dt.datetime) -> int:
        return ConsentHousekeeping(self.ctx).purge_idempotency_records(now)

    def purge_confirmations(self, now: dt.datetime) -> int:
        return ConsentHousekeeping(self.ctx).purge_confirmations(now)
