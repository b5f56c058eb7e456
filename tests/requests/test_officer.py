"""The officer's decisions on a request: one extension only, of 1 to 61 days, given within
the first month (Art. 12(3)); a reason for every decision; what counts as overdue."""
from __future__ import annotations

import datetime as dt

import pytest

from privacy.context import utcnow
from privacy.errors import Conflict, InvalidInput
from privacy.requests.intake import IntakeService
from privacy.requests.officer import OfficerService
from tests.conftest import Mailbox
from tests.requests.conftest import ANNA, open_request, opened_and_verified

RECEIVED = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2026, 2, 15, 22, 59, 59, 999999, tzinfo=dt.UTC)  # end of 15 February in Stockholm
REASON = "the request covers ten years of records"


def _deadline(view: dict[str, object]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(view["deadline"]).replace("Z", "+00:00"))


@pytest.mark.parametrize(("days", "until"), [
    (1, "2026-02-16T22:59:59.999999Z"),
    (61, "2026-04-17T21:59:59.999999Z"),  # summer time by then: the local day still ends at midnight
])
def test_an_extension_of_1_to_61_days_ends_with_the_local_day_that_many_days_after_the_due_date(
        intake_service: IntakeService, officer_service: OfficerService, days: int, until: str) -> None:
    request_id = open_request(intake_service, "access", RECEIVED)
    view = officer_service.extend(request_id, days, REASON, "officer", RECEIVED + dt.timedelta(days=1))
    assert view["due_at"] == "2026-02-15T22:59:59.999999Z"  # the first deadline is kept
    assert view["extended_until"] == view["deadline"] == until
    assert view["extension_reason"] == REASON


@pytest.mark.parametrize("days", [0, 62, -1])
def test_an_extension_of_other_than_1_to_61_days_is_refused_and_changes_nothing(
        intake_service: IntakeService, officer_service: OfficerService, days: int) -> None:
    request_id = open_request(intake_service, "access", RECEIVED)
    with pytest.raises(InvalidInput, match="1 to 61 days") as refused:
        officer_service.extend(request_id, days, REASON, "officer", RECEIVED)
    assert "days" in refused.value.details
    view = officer_service.get(request_id)
    assert view["extended_until"] is None and "extension_reason" not in view


def test_a_deadline_is_extended_only_once(intake_service: IntakeService, officer_service: OfficerService) -> None:
    request_id = open_request(intake_service, "access", RECEIVED)
    first = officer_service.extend(request_id, 10, REASON, "officer", RECEIVED)
    with pytest.raises(Conflict) as refused:
        officer_service.extend(request_id, 20, "more still", "officer", RECEIVED)
    assert refused.value.code == "already_extended"
    view = officer_service.get(request_id)
    assert view["extended_until"] == first["extended_until"]
    assert view["extension_reason"] == REASON


def test_an_extension_is_allowed_until_the_last_instant_of_the_first_month(
        intake_service: IntakeService, officer_service: OfficerService) -> None:
    late = open_request(intake_service, "access", RECEIVED)
    with pytest.raises(Conflict) as refused:
        officer_service.extend(late, 10, REASON, "officer", DUE + dt.timedelta(microseconds=1))
    assert refused.value.code == "deadline_passed"
    in_time = open_request(intake_service, "access", RECEIVED)
    assert officer_service.extend(in_time, 10, REASON, "officer", DUE)["extended_until"] is not None


def test_a_closed_request_cannot_be_extended(
        intake_service: IntakeService, officer_service: OfficerService, mailbox: Mailbox) -> None:
    request_id = opened_and_verified(intake_service, mailbox, "restriction")
    with pytest.raises(Conflict) as refused:
        officer_service.extend(request_id, 10, REASON, "officer", utcnow())
    assert refused.value.code == "request_closed"


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001])
def test_every_decision_needs_a_reason_of_at_most_2000_characters(
        intake_service: IntakeService, officer_service: OfficerService, reason: str) -> None:
    request_id = open_request(intake_service, "access", RECEIVED)
    for decide in (lambda: officer_service.extend(request_id, 10, reason, "officer", RECEIVED),
                   lambda: officer_service.reject(request_id, reason, "officer", RECEIVED),
                   lambda: officer_service.lift_restriction(request_id, reason, "officer", RECEIVED)):
        with pytest.raises(InvalidInput) as refused:
            decide()
        assert list(refused.value.details) == ["reason"]
    assert officer_service.get(request_id)["status"] == "pending_verification"


def test_a_request_is_overdue_only_after_the_last_instant_of_its_deadline(
        intake_service: IntakeService, officer_service: OfficerService) -> None:
    request_id = open_request(intake_service, "access", RECEIVED)
    assert [r["overdue"] for r in officer_service.queue(DUE)] == [False]
    assert [r["overdue"] for r in officer_service.queue(DUE + dt.timedelta(microseconds=1))] == [True]
    assert officer_service.queue(DUE, overdue=True) == []
    officer_service.extend(request_id, 1, REASON, "officer", RECEIVED)
    assert [r["overdue"] for r in officer_service.queue(DUE + dt.timedelta(hours=1))] == [False]


def test_a_closed_request_is_never_overdue(
        intake_service: IntakeService, officer_service: OfficerService, mailbox: Mailbox) -> None:
    request_id = opened_and_verified(intake_service, mailbox, "restriction")
    long_after = _deadline(officer_service.get(request_id)) + dt.timedelta(days=365)
    assert [(r["id"], r["overdue"]) for r in officer_service.queue(long_after)] == [(request_id, False)]


def test_only_a_completed_restriction_can_be_lifted(
        intake_service: IntakeService, officer_service: OfficerService, mailbox: Mailbox) -> None:
    request_id = opened_and_verified(intake_service, mailbox, "objection", purposes=["marketing_email"])
    mails = len(mailbox.to(ANNA))
    with pytest.raises(Conflict) as refused:
        officer_service.lift_restriction(request_id, "the dispute is settled", "officer", utcnow())
    assert refused.value.code == "not_a_restriction"
    assert len(mailbox.to(ANNA)) == mails
