"""Scheduled jobs. Each takes ``now`` so tests can move the clock; each is idempotent."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete

from api.ratelimits import purge_expired
from exports.store import instance_store
from privacy.consent.service import ConsentService
from privacy.context import current
from privacy.mail.outbox import deliver_pending
from privacy.requests.fulfilment import release_expired_holds
from privacy.requests.service import RequestService
from privacy.storage.database import db, unit_of_work
from privacy.storage.models import Confirmation, IdempotencyRecord

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = dt.timedelta(hours=24)


def expire_consents(now: dt.datetime) -> int:
    """Append an ``expired`` ledger event for every consent past its purpose's validity."""
    count = ConsentService(db.session(), current()).expire(now)
    log.info("consent expiry: %d consents expired", count)
    return count


def purge_idempotency_keys(now: dt.datetime) -> int:
    """Forget stored answers to Idempotency-Keys older than a day (they hold no personal data)."""
    with unit_of_work() as session:
        result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - IDEMPOTENCY_TTL))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def purge_confirmations(now: dt.datetime) -> int:
    """Drop the rows of expired double opt-in links; pending consents stay pending (never granted).

    A used link's row is kept until the link expires: it is what refuses a second click.
    An expired link is refused by its own date, stored or not."""
    with unit_of_work() as session:
        result = session.execute(delete(Confirmation).where(Confirmation.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def send_mail(now: dt.datetime) -> int:
    """Deliver the mails waiting in the outbox (double opt-in links, later notices)."""
    return deliver_pending(db.session(), current(), now)


def _logged(count: int, message: str) -> int:
    """``count``, logged with ``message`` (one ``%d``) when anything was done."""
    if count:
        log.info(message, count)
    return count


def _requests() -> RequestService:
    return RequestService(db.session(), current(), packager=instance_store())


def expire_requests(now: dt.datetime) -> int:
    """Requests never verified within the link's 7 days become ``expired``."""
    return _logged(_requests().expire_unverified(now), "requests: %d unverified requests expired")


def process_requests(now: dt.datetime) -> int:
    """Finish verified requests whose work is pending and close those whose every task has an outcome."""
    return _requests().process_open(now)


def purge_packages(now: dt.datetime) -> int:
    """Delete access packages past their 7 days."""
    return _logged(_requests().purge_packages(now), "requests: %d expired packages deleted")


def forget_closed_requests(now: dt.datetime) -> int:
    """Destroy the keys of requests closed more than 90 days ago (their address and details)."""
    return _logged(_requests().forget_closed(now), "requests: details of %d closed requests destroyed")


def purge_rate_limits(now: dt.datetime) -> int:
    """Delete rate-limit counters whose window is over."""
    return purge_expired(now.timestamp())


def release_legal_holds(now: dt.datetime) -> int:
    """Erase what erasures kept for a legal hold once the hold has ended, and destroy its keys."""
    with unit_of_work() as session:
        summary = release_expired_holds(session, now)
    if summary["fields"] or summary["keys"]:
        log.info("legal holds: %d held fields erased, %d hold keys destroyed", summary["fields"], summary["keys"])
    return summary["fields"]


JOBS = {
    "send_mail": (send_mail, dt.timedelta(seconds=5)),
    "expire_consents": (expire_consents, dt.timedelta(hours=1)),
    "purge_idempotency_keys": (purge_idempotency_keys, dt.timedelta(hours=1)),
    "purge_confirmations": (purge_confirmations, dt.timedelta(hours=6)),
    "expire_requests": (expire_requests, dt.timedelta(hours=1)),
    "process_requests": (process_requests, dt.timedelta(minutes=1)),
    "purge_packages": (purge_packages, dt.timedelta(hours=1)),
    "release_legal_holds": (release_legal_holds, dt.timedelta(hours=24)),
    "forget_closed_requests": (forget_closed_requests, dt.timedelta(hours=24)),
    "purge_rate_limits": (purge_rate_limits, dt.timedelta(hours=1)),
}
