"""Opening a request: when it is due, and that the subject is found only when the customer
uses the mailed link."""
from __future__ import annotations

import datetime as dt

import pytest

from privacy.context import PrivacyContext, utcnow
from privacy.requests.intake import IntakeService, RequestCommand
from privacy.requests.officer import OfficerService
from tests.conftest import Mailbox
from tests.requests.conftest import ANNA, mailed_token, sign_up

LATE_ON_31_JANUARY = dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.UTC)  # already 1 February in Stockholm


def test_a_request_is_due_at_the_end_of_the_local_day_one_calendar_month_after_receipt(
        intake_service: IntakeService, officer_service: OfficerService) -> None:
    opened = intake_service.open(RequestCommand(type="access", email=ANNA), LATE_ON_31_JANUARY)
    assert opened["due_at"] == "2026-03-01T22:59:59.999999Z"  # 1 March ends at 23:00 UTC (CET)
    assert officer_service.get(opened["id"])["deadline"] == "2026-03-01T22:59:59.999999Z"


def test_the_due_date_is_counted_in_the_controllers_time_zone(
        ctx: PrivacyContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ctx.policy.controller, "time_zone", "America/New_York")
    opened = IntakeService(ctx).open(RequestCommand(type="access", email=ANNA), LATE_ON_31_JANUARY)
    assert opened["due_at"] == "2026-03-01T04:59:59.999999Z"  # still 31 January in New York: due 28 February


def test_a_subject_who_signs_up_after_the_request_is_opened_is_found_when_the_link_is_used(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService,
        mailbox: Mailbox) -> None:
    opened = intake_service.open(RequestCommand(type="restriction", email=ANNA), utcnow())
    subject_id = sign_up(ctx)
    assert officer_service.get(opened["id"])["subject_id"] is None
    answer = intake_service.verify(opened["id"], mailed_token(mailbox, opened["id"]), utcnow())
    assert answer["status"] == "completed"
    assert set(answer) == {"id", "type", "status", "received_at", "due_at", "extended_until"}
    view = officer_service.get(opened["id"])
    assert view["subject_id"] == subject_id
    assert [s["status"] for s in view["systems"]] == ["succeeded"]
