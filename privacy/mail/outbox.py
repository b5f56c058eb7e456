"""A durable outbox for mail to customers.

A request only inserts a row (the mail, or for a double opt-in the note it is written
from, sealed under the subject's data key) in the same transaction as the consent it
belongs to, so a mail is sent if and only if its consent was recorded, and no request
waits for SMTP or disk. The scheduler process delivers
(``deliver_pending``): it leases a batch, sends each mail, and deletes what was sent;
a failed send is retried with exponential backoff.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from privacy.consent.mail import DOUBLE_OPT_IN, double_opt_in_mail
from privacy.context import PrivacyContext
from privacy.crypto.keys import Crypto, CryptoError
from privacy.ids import new_id
from privacy.mail.mailer import OutgoingMail
from privacy.policy.catalogue import load_catalogue
from privacy.storage.database import Database
from privacy.storage.repositories.outbox import LeasedMail, OutboxRepository, QueuedMail

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
FIRST_RETRY = dt.timedelta(seconds=30)
LAST_RETRY = dt.timedelta(hours=1)
MAX_ATTEMPTS = 12


def _context(mail_id: str) -> str:
    return f"outbox/{mail_id}"


def sealed_mail(crypto: Crypto, dek: bytes, owner_id: str, mail: OutgoingMail | dict[str, Any], now: dt.datetime,
                for_request: bool = False) -> QueuedMail:
    """``mail`` to queue, its content sealed under its owner's data key.

    ``mail`` is a written mail, or a note a template writes it from when it is sent (see
    :mod:`privacy.consent.mail`). The owner is a subject, or with ``for_request`` a
    data-subject request (whose person may not be a known subject).
    """
    mail_id = new_id()
    content = json.dumps(mail if isinstance(mail, dict) else {
        "to": mail.to, "subject": mail.subject, "text": mail.text, "html": mail.html, "headers": dict(mail.headers)})
    return QueuedMail(id=mail_id, subject_id=None if for_request else owner_id,
                      request_id=owner_id if for_request else None, created_at=now,
                      sealed=crypto.encrypt_field(dek, owner_id, _context(mail_id), content))


SERVICE_OWNER = "service"  # the owner id a service mail is sealed under (no subject or request)


def sealed_service_mail(crypto: Crypto, mail: OutgoingMail, now: dt.datetime) -> QueuedMail:
    """A mail of the service to its officers, owned by no subject or request: sealed under
    the service's own key (:meth:`Crypto.service_key`)."""
    queued = sealed_mail(crypto, crypto.service_key(), SERVICE_OWNER, mail, now)
    queued.subject_id = None
    return queued


def _backoff(attempts: int) -> dt.timedelta:
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LAST_RETRY)


def deliver_pending(ctx: PrivacyContext, now: dt.datetime, limit: int = 200) -> int:
    """Send the mails that are due; returns how many were sent."""
    database = ctx.database
    with database.unit_of_work() as session:
        leased = OutboxRepository(session).lease(now, now + LEASE, limit)
    sent = 0
    for mail in leased:
        try:
            content = json.loads(_open(ctx.crypto, mail))
        except CryptoError:
            log.warning("outbox mail %s can no longer be opened (subject key destroyed); dropped", mail.id)
            _finish(database, mail.id)
            continue
        try:
            ctx.mailer.send(_written(content, ctx))
        except Exception as exc:  # any delivery failure: back off and try again later
            _retry(database, mail.id, mail.attempts + 1, type(exc).__name__, now)
            continue
        _finish(database, mail.id)
        sent += 1
    database.session.rollback()  # the catalogue read by a template
    return sent


def _open(crypto: Crypto, mail: LeasedMail) -> str:
    """The sealed content of a leased mail, opened with its owner's key."""
    if mail.subject is not None:
        return crypto.decrypt_field(crypto.data_key(mail.subject), mail.subject.id, _context(mail.id), mail.sealed)
    if mail.request is not None:
        return crypto.decrypt_field(crypto.request_key(mail.request), mail.request.id, _context(mail.id), mail.sealed)
    # Neither owner: a service mail (a mail whose owner was deleted went with it, by cascade).
    return crypto.decrypt_field(crypto.service_key(), SERVICE_OWNER, _context(mail.id), mail.sealed)


def _written(content: dict[str, Any], ctx: PrivacyContext) -> OutgoingMail:
    """The mail a sealed outbox entry holds, written from its note if it is one."""
    template = content.get("template")
    if template is None:
        return OutgoingMail(to=content["to"], subject=content["subject"], text=content["text"],
                            html=content["html"], headers=content["headers"])
    if template == DOUBLE_OPT_IN:
        return double_opt_in_mail(ctx, load_catalogue(ctx.database), content)
    raise ValueError(f"unknown mail template {template!r}")


def _finish(database: Database, mail_id: str) -> None:
    with database.unit_of_work() as session:
        OutboxRepository(session).remove(mail_id)


def _retry(database: Database, mail_id: str, attempts: int, error: str, now: dt.datetime) -> None:
    with database.unit_of_work() as session:
        outbox = OutboxRepository(session)
        if attempts >= MAX_ATTEMPTS:
            log.error("outbox mail %s failed %d times (%s); dropped", mail_id, attempts, error)
            outbox.remove(mail_id)
            return
        log.warning("outbox mail %s failed (%s); attempt %d, retrying later", mail_id, error, attempts)
        outbox.retry(mail_id, attempts, error, now + _backoff(attempts))
