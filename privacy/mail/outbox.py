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

from sqlalchemy import bindparam, delete, insert, select, update

from privacy.consent.mail import DOUBLE_OPT_IN, double_opt_in_mail
from privacy.context import PrivacyContext
from privacy.crypto.keys import Crypto, CryptoError
from privacy.ids import new_id
from privacy.mail.mailer import OutgoingMail
from privacy.policy.catalogue import load_catalogue
from privacy.storage.database import Database
from privacy.storage.models import DataRequest, OutboxMail, Subject

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
FIRST_RETRY = dt.timedelta(seconds=30)
LAST_RETRY = dt.timedelta(hours=1)
MAX_ATTEMPTS = 12
_O = OutboxMail.__table__
INSERT_MAIL = insert(_O)


def _context(mail_id: str) -> str:
    return f"outbox/{mail_id}"


def sealed_row(crypto: Crypto, dek: bytes, owner_id: str, mail: OutgoingMail | dict[str, Any], now: dt.datetime,
               for_request: bool = False) -> dict[str, Any]:
    """The outbox row for ``mail``: its content sealed under its owner's data key.

    ``mail`` is a written mail, or a note a template writes it from when it is sent (see
    :mod:`privacy.consent.mail`). The owner is a subject, or with ``for_request`` a
    data-subject request (whose person may not be a known subject).
    """
    mail_id = new_id()
    content = json.dumps(mail if isinstance(mail, dict) else {
        "to": mail.to, "subject": mail.subject, "text": mail.text, "html": mail.html, "headers": dict(mail.headers)})
    return {"id": mail_id, "subject_id": None if for_request else owner_id,
            "request_id": owner_id if for_request else None, "created_at": now, "next_attempt_at": now,
            "attempts": 0, "last_error": None,
            "sealed": crypto.encrypt_field(dek, owner_id, _context(mail_id), content)}


def _backoff(attempts: int) -> dt.timedelta:
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LAST_RETRY)


def deliver_pending(ctx: PrivacyContext, now: dt.datetime, limit: int = 200) -> int:
    """Send the mails that are due; returns how many were sent."""
    database, session = ctx.database, ctx.database.session
    with database.unit_of_work() as tx:
        due = select(_O.c.id).where(_O.c.next_attempt_at <= now).order_by(_O.c.created_at).limit(limit)
        ids = list(tx.scalars(due.with_for_update(skip_locked=True)))
        if ids:
            tx.execute(update(_O).where(_O.c.id.in_(bindparam("ids", expanding=True)))
                       .values(next_attempt_at=now + LEASE), {"ids": ids})
    leased = session.execute(
        select(OutboxMail, Subject, DataRequest)
        .outerjoin(Subject, Subject.id == OutboxMail.subject_id)
        .outerjoin(DataRequest, DataRequest.id == OutboxMail.request_id)
        .where(OutboxMail.id.in_(ids)).order_by(OutboxMail.created_at)).all() if ids else []
    sent = 0
    for row, subject, data_request in leased:
        mail_id = row.id
        try:
            owner = subject if subject is not None else data_request
            if owner is None:
                raise CryptoError("the mail's owner is gone")
            key = ctx.crypto.data_key(subject) if subject is not None else ctx.crypto.request_key(data_request)
            content = json.loads(ctx.crypto.decrypt_field(key, owner.id, _context(mail_id), row.sealed))
        except CryptoError:
            log.warning("outbox mail %s can no longer be opened (subject key destroyed); dropped", mail_id)
            _finish(database, mail_id)
            continue
        try:
            ctx.mailer.send(_written(content, ctx))
        except Exception as exc:  # any delivery failure: back off and try again later
            _retry(database, mail_id, row.attempts + 1, type(exc).__name__, now)
            continue
        _finish(database, mail_id)
        sent += 1
    session.rollback()
    return sent


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
    with database.unit_of_work() as tx:
        tx.execute(delete(_O).where(_O.c.id == mail_id))


def _retry(database: Database, mail_id: str, attempts: int, error: str, now: dt.datetime) -> None:
    with database.unit_of_work() as tx:
        if attempts >= MAX_ATTEMPTS:
            log.error("outbox mail %s failed %d times (%s); dropped", mail_id, attempts, error)
            tx.execute(delete(_O).where(_O.c.id == mail_id))
            return
        log.warning("outbox mail %s failed (%s); attempt %d, retrying later", mail_id, error, attempts)
        tx.execute(update(_O).where(_O.c.id == mail_id).values(
            attempts=attempts, last_error=error[:200], next_attempt_at=now + _backoff(attempts)))
