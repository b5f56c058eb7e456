"""ConsentService without HTTP: recording answers, withdrawals in a caller's transaction,
links, expiry, and one ledger whichever path wrote it."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from privacy.consent import confirm_links
from privacy.consent.service import ConsentCommand, ConsentService
from privacy.context import PrivacyContext, utcnow
from privacy.errors import Conflict, Gone
from privacy.ledger import verification
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.ledger import LedgerRepository
from tests.conftest import SIGNUP

SOURCE = {"form": "signup-web", "channel": "web"}


def _command(email: str = "anna@example.se", **purposes: bool) -> ConsentCommand:
    return ConsentCommand(purposes=purposes or dict(SIGNUP["purposes"]), source=SOURCE,
                          subject={**SIGNUP["subject"], "email": email}, notice_version=SIGNUP["notice_version"])


def _statuses(ctx: PrivacyContext, subject_id: str) -> dict[str, str]:
    with ctx.database.raw_read() as reader:
        return {code: s.status for code, s in ConsentStateRepository(reader).of_subject(subject_id).items()}


def _events(ctx: PrivacyContext, subject_id: str) -> list[Any]:
    events = LedgerRepository(ctx.database.session).events_of(subject_id)
    ctx.database.session.rollback()
    return events


def test_a_recording_answers_with_its_body_and_is_not_a_replay(ctx: PrivacyContext) -> None:
    result = ConsentService(ctx).record(_command(), utcnow())
    assert not result.replayed
    assert result.body["consents"]["marketing_email"]["status"] == "pending"
    assert result.body["dropped_fields"] == [] and "signature" in result.body["receipt"]
    assert _statuses(ctx, result.body["subject_id"]) == {"loyalty_club": "granted", "marketing_email": "pending",
                                                         "profiling": "declined"}


def test_a_repeat_under_the_same_idempotency_key_gets_the_first_answer_and_records_nothing(
        ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    first = service.record(_command(), utcnow(), ("key-1", "form-7f3a"))
    again = service.record(_command(), utcnow(), ("key-1", "form-7f3a"))
    assert again.replayed and again.body == first.body
    assert len(_events(ctx, first.body["subject_id"])) == 3


def test_a_repeat_under_the_same_key_with_another_body_is_a_conflict(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    service.record(_command(), utcnow(), ("key-1", "form-7f3a"))
    with pytest.raises(Conflict) as refused:
        service.record(_command(profiling=True), utcnow(), ("key-1", "form-7f3a"))
    assert refused.value.code == "idempotency_key_reused"


def test_a_withdrawal_in_the_callers_transaction_takes_only_the_named_active_purposes(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    sid = service.record(_command(), utcnow()).body["subject_id"]
    with ctx.database.unit_of_work() as session:
        withdrawn = service.withdraw_for(session, sid, ["marketing_email", "profiling"],
                                         {"channel": "data-subject-request"}, utcnow())
    assert withdrawn == ["marketing_email"]  # profiling was declined: nothing to withdraw
    assert _statuses(ctx, sid)["marketing_email"] == "withdrawn"
    assert _statuses(ctx, sid)["loyalty_club"] == "granted"


def test_a_withdrawal_rolled_back_with_its_transaction_leaves_nothing(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    sid = service.record(_command(), utcnow()).body["subject_id"]
    with pytest.raises(RuntimeError), ctx.database.unit_of_work() as session:
        service.withdraw_for(session, sid, None, {"channel": "data-subject-request"}, utcnow())
        raise RuntimeError("the erasure failed half way")
    assert _statuses(ctx, sid) == {"loyalty_club": "granted", "marketing_email": "pending", "profiling": "declined"}
    assert len(_events(ctx, sid)) == 3


def test_a_confirm_link_grants_its_pending_purposes_once(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    sid = service.record(_command(), utcnow()).body["subject_id"]
    token = confirm_links.issue(ctx.crypto, sid, ["marketing_email"], utcnow(), 14)
    assert service.confirm(token, utcnow()) == {"subject_id": sid, "confirmed": ["marketing_email"]}
    assert _statuses(ctx, sid)["marketing_email"] == "granted"
    with pytest.raises(Gone) as again:
        service.confirm(token, utcnow())
    assert again.value.code == "token_used"


def test_withdrawing_by_link_what_is_not_active_changes_nothing(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    sid = service.record(_command(), utcnow()).body["subject_id"]
    token = ctx.crypto.link_token("withdraw", sid, "profiling")
    assert service.withdraw_by_link(sid, "profiling", token, utcnow())["status"] == "declined"
    assert len(_events(ctx, sid)) == 3


def test_expiry_works_through_every_batch(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    for n in range(3):
        service.record(_command(f"p{n}@example.se", profiling=True), utcnow())
    later = utcnow() + dt.timedelta(days=731)  # profiling consent is valid 730 days
    assert service.expire(later, batch_size=2) == 3
    assert service.expire(later, batch_size=2) == 0


def test_the_ledger_stays_one_chain_whichever_path_writes_it(ctx: PrivacyContext) -> None:
    service = ConsentService(ctx)
    sid = service.record(_command(), utcnow()).body["subject_id"]  # raw transactions
    token = ctx.crypto.link_token("withdraw", sid, "loyalty_club")
    service.withdraw_by_link(sid, "loyalty_club", token, utcnow())  # a unit of work
    service.record(_command(loyalty_club=True), utcnow())
    report = verification(ctx.database.session)
    ctx.database.session.rollback()
    assert report["ok"] and report["chains"][0]["entries"] == 5
