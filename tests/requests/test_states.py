"""The state machine of a request: only the moves in its table are allowed, and a refused
move changes nothing (whoever asks for it: customer, officer or scheduler)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.context import PrivacyContext, utcnow
from privacy.errors import Conflict
from privacy.requests.intake import IntakeService
from privacy.requests.officer import OfficerService
from privacy.requests.states import STATUSES, move
from privacy.storage.models import AuditEntry
from privacy.storage.repositories.requests import RequestRecord
from tests.conftest import Mailbox
from tests.requests.conftest import ANNA, mailed_token, open_request, opened_and_verified

LEGAL = {  # the rule, written out here so that a change to the table shows up as a failing test
    ("pending_verification", "verified"), ("pending_verification", "expired"), ("pending_verification", "rejected"),
    ("verified", "in_progress"), ("verified", "rejected"),
    ("in_progress", "completed"), ("in_progress", "partially_completed"), ("in_progress", "rejected"),
    ("partially_completed", "in_progress"),  # an officer retries a system that failed
}
ILLEGAL = [(start, end) for start in STATUSES for end in STATUSES if (start, end) not in LEGAL]
REQUEST_ID = "7d4e1c8a-0000-4000-8000-000000000000"


def _request(status: str) -> RequestRecord:
    """A request in ``status`` that is not stored (a move writes nothing the test keeps)."""
    opened = utcnow()
    return RequestRecord(REQUEST_ID, "access", status, b"idx", None, None, None, None, "en", opened, opened, None,
                         None, None, opened)


@pytest.mark.parametrize(("start", "end"), ILLEGAL)
def test_a_move_outside_the_legal_ones_is_refused_and_leaves_the_status(start: str, end: str) -> None:
    request = _request(start)
    with pytest.raises(Conflict) as refused:
        move(Session(), request, end, "test", utcnow())  # refused before the session is touched
    assert refused.value.code == "invalid_transition"
    assert request.status == start


@pytest.mark.parametrize(("start", "end"), sorted(LEGAL))
def test_a_legal_move_changes_the_status_and_is_written_to_the_requests_history(
        ctx: PrivacyContext, start: str, end: str) -> None:
    request = _request(start)
    now = utcnow()
    session = ctx.database.session()
    try:
        move(session, request, end, "officer", now, {"why": "test"})
        entry = session.scalars(select(AuditEntry).where(AuditEntry.target == REQUEST_ID)).one()
        written = (entry.action, entry.actor, json.loads(entry.details))
    finally:
        session.rollback()  # nothing of this test stays
    assert (request.status, request.updated_at) == (end, now)
    assert written == (f"request.{end}", "officer", {"from": start, "why": "test"})


def test_completed_rejected_and_expired_are_final_and_partially_completed_only_reopens() -> None:
    assert set(STATUSES) - {start for start, _ in LEGAL} == {"completed", "rejected", "expired"}
    assert {end for start, end in LEGAL if start == "partially_completed"} == {"in_progress"}


def test_a_completed_request_cannot_be_rejected_and_nothing_is_mailed(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService,
        mailbox: Mailbox) -> None:
    request_id = opened_and_verified(intake_service, mailbox, "restriction")  # unknown address: done at once
    assert officer_service.get(request_id)["status"] == "completed"
    mails = len(mailbox.to(ANNA))
    with pytest.raises(Conflict) as refused:
        officer_service.reject(request_id, "too late to refuse", "officer", utcnow())
    assert refused.value.code == "invalid_transition"
    view = officer_service.get(request_id)
    assert view["status"] == "completed"
    assert "rejection_reason" not in view
    assert "request.rejected" not in [h["action"] for h in view["history"]]
    assert len(mailbox.to(ANNA)) == mails


def test_a_rejected_request_cannot_be_verified_with_its_link(
        intake_service: IntakeService, officer_service: OfficerService, mailbox: Mailbox) -> None:
    opened = utcnow() - dt.timedelta(hours=1)
    request_id = open_request(intake_service, "access", opened)
    officer_service.reject(request_id, "a duplicate of an earlier request", "officer", opened)
    with pytest.raises(Conflict) as refused:
        intake_service.verify(request_id, mailed_token(mailbox, request_id), utcnow())
    assert refused.value.code == "not_pending_verification"
    assert officer_service.get(request_id)["status"] == "rejected"
