"""The outbox's statements: queue, lease, retry, remove."""
from __future__ import annotations

import datetime as dt

from privacy.context import PrivacyContext
from privacy.storage.repositories.outbox import OutboxRepository, QueuedMail
from tests.storage.conftest import NOW, new_subject

LEASE = NOW + dt.timedelta(minutes=5)


def test_a_mail_queued_before_the_lock_is_leased_with_its_owners_key(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.raw_write() as tx:
        tx.run(OutboxRepository.prepare([QueuedMail("m-1", sid, None, b"sealed", NOW)], tx.dialect))
    with ctx.database.unit_of_work() as session:
        (mail,) = OutboxRepository(session).lease(NOW, LEASE, 10)
    assert (mail.id, mail.sealed, mail.attempts, mail.request) == ("m-1", b"sealed", 0, None)
    assert mail.subject is not None and mail.subject.id == sid and mail.subject.wrapped_key is not None


def test_a_leased_mail_is_not_leased_again_until_its_lease_runs_out(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        OutboxRepository(session).add([QueuedMail(f"m-{i}", sid, None, b"x", NOW + dt.timedelta(seconds=i))
                                       for i in range(3)])
    with ctx.database.unit_of_work() as session:
        leased = OutboxRepository(session).lease(NOW + dt.timedelta(seconds=5), LEASE, 2)
    assert [m.id for m in leased] == ["m-0", "m-1"]
    with ctx.database.unit_of_work() as session:
        outbox = OutboxRepository(session)
        assert [m.id for m in outbox.lease(NOW + dt.timedelta(seconds=5), LEASE, 10)] == ["m-2"]
        assert [m.id for m in outbox.lease(LEASE, LEASE, 10)] == ["m-0", "m-1", "m-2"]


def test_a_retried_mail_keeps_its_count_and_waits_for_its_next_attempt(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        OutboxRepository(session).add([QueuedMail("m-1", sid, None, b"x", NOW),
                                       QueuedMail("m-2", sid, None, b"y", NOW)])
    with ctx.database.unit_of_work() as session:
        outbox = OutboxRepository(session)
        outbox.retry("m-1", 3, "ConnectionRefusedError" * 20, NOW + dt.timedelta(minutes=2))
        outbox.remove("m-2")
    with ctx.database.unit_of_work() as session:
        outbox = OutboxRepository(session)
        assert outbox.lease(NOW + dt.timedelta(minutes=1), LEASE, 10) == []
        (mail,) = outbox.lease(NOW + dt.timedelta(minutes=2), LEASE, 10)
    assert mail.id == "m-1" and mail.attempts == 3
