"""After a request is closed: its personal details are kept for 90 days, then its key is
destroyed; its dates, status and history stay."""
from __future__ import annotations

import datetime as dt

from privacy.context import PrivacyContext, utcnow
from privacy.requests.housekeeping import HousekeepingService
from privacy.requests.intake import IntakeService
from privacy.requests.officer import OfficerService
from tests.requests.conftest import open_request

REASON = "the customer withdrew the request by phone"


def test_a_closed_requests_details_are_kept_for_90_days_then_forgotten(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService) -> None:
    closed = utcnow() - dt.timedelta(days=200)
    request_id = open_request(intake_service, "access", closed)
    officer_service.reject(request_id, REASON, "officer", closed)
    housekeeping = HousekeepingService(ctx)
    assert housekeeping.forget_closed(closed + dt.timedelta(days=90, microseconds=-1)) == 0
    assert officer_service.get(request_id)["rejection_reason"] == REASON
    assert housekeeping.forget_closed(closed + dt.timedelta(days=90)) == 1
    view = officer_service.get(request_id)
    assert "rejection_reason" not in view
    assert view["status"] == "rejected" and view["completed_at"] is not None
    assert [h["action"] for h in view["history"]][-2:] == ["request.rejected", "request.details_destroyed"]
    assert housekeeping.forget_closed(closed + dt.timedelta(days=91)) == 0  # once


def test_an_open_request_is_never_forgotten(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService) -> None:
    received = utcnow() - dt.timedelta(days=400)
    request_id = open_request(intake_service, "access", received)
    assert HousekeepingService(ctx).forget_closed(utcnow()) == 0
    assert "request.details_destroyed" not in [h["action"] for h in officer_service.get(request_id)["history"]]
