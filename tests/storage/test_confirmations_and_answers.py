"""Used opt-in links and stored Idempotency-Key answers."""
from __future__ import annotations

import datetime as dt
from typing import Any

from privacy.context import PrivacyContext
from privacy.storage.models import Confirmation
from privacy.storage.repositories.confirmations import ConfirmationRepository
from privacy.storage.repositories.idempotency import IdempotencyRepository
from tests.storage.conftest import NOW, new_subject

EXPIRES = NOW + dt.timedelta(days=14)


def _rolled_back(ctx: PrivacyContext, work: Any) -> Any:
    """``work(session)`` in a transaction that is then rolled back (a refused insert ends a
    PostgreSQL transaction, as it ends the request that tried it)."""
    session = ctx.database.session()
    try:
        return work(session)
    finally:
        session.rollback()


def test_a_links_use_is_stored_once(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        assert ConfirmationRepository(session).add_used("h-1", sid, ["marketing_email"], NOW, EXPIRES, NOW)
    again = _rolled_back(ctx, lambda s: ConfirmationRepository(s).add_used("h-1", sid, ["sms"], NOW, EXPIRES, NOW))
    assert again is False
    with ctx.database.unit_of_work() as session:
        stored = ConfirmationRepository(session).get("h-1")
    assert stored is not None and stored.purposes == ["marketing_email"] and stored.used_at == NOW


def test_a_link_stored_at_sign_up_is_marked_used_only_once(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:  # the former kind of link: its row written at sign-up
        session.add(Confirmation(token_hash="h-2", subject_id=sid, purposes='["sms"]', created_at=NOW,
                                 expires_at=EXPIRES))
    with ctx.database.unit_of_work() as session:
        confirmations = ConfirmationRepository(session)
        assert confirmations.get("h-2").used_at is None
        assert confirmations.use("h-2", NOW) is True
        assert confirmations.use("h-2", NOW) is False


def test_rows_of_expired_links_are_purged(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        confirmations = ConfirmationRepository(session)
        confirmations.add_used("old", sid, ["sms"], NOW, NOW + dt.timedelta(days=1), NOW)
        confirmations.add_used("new", sid, ["sms"], NOW, EXPIRES, NOW)
    with ctx.database.unit_of_work() as session:
        assert ConfirmationRepository(session).purge_expired(NOW + dt.timedelta(days=2)) == 1
    with ctx.database.unit_of_work() as session:
        confirmations = ConfirmationRepository(session)
        assert confirmations.get("old") is None and confirmations.get("new") is not None


def test_an_answer_stored_before_the_lock_is_found_by_its_key_until_it_is_purged(ctx: PrivacyContext) -> None:
    body = {"subject_id": "s-1", "consents": {"sms": {"status": "granted"}}}
    with ctx.database.raw_write() as tx:
        tx.run(IdempotencyRepository.prepare("key-1", "form-7f3a", "mac", body, NOW, tx.dialect))
    with ctx.database.raw_read() as reader:
        answers = IdempotencyRepository(reader)
        stored = answers.find("key-1", "form-7f3a")
        assert answers.find("key-2", "form-7f3a") is None  # keys are per API key
    assert stored is not None and stored.body == body and stored.request_hash == "mac"
    with ctx.database.unit_of_work() as session:
        assert IdempotencyRepository(session).purge(NOW) == 0
        assert IdempotencyRepository(session).purge(NOW + dt.timedelta(seconds=1)) == 1
