"""A verified request's work: this service's task is retried after a fault and counts as
failed after five tries; unverified requests expire when their link does."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from privacy.context import PrivacyContext, utcnow
from privacy.requests.intake import IntakeService
from privacy.requests.officer import OfficerService
from privacy.requests.workflow import WorkflowService
from tests.conftest import Mailbox
from tests.requests.conftest import ANNA, open_request, opened_and_verified, sign_up


def test_this_services_task_fails_after_five_faulty_tries_and_the_request_is_partially_completed(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService, mailbox: Mailbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sign_up(ctx)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr("privacy.requests.fulfilment.restrict", broken)
    request_id = opened_and_verified(intake_service, mailbox, "restriction")  # the first try
    workflow = WorkflowService(ctx)
    for tries in (2, 3, 4):
        assert workflow.process_open(utcnow()) == 0
        view = officer_service.get(request_id)
        assert view["status"] == "in_progress"
        [local] = view["systems"]
        assert (local["status"], local["attempts"], local["last_error"], local["outcome"]) == (
            "pending", tries, "internal error (OSError)", None)
    assert workflow.process_open(utcnow()) == 1
    view = officer_service.get(request_id)
    assert view["status"] == "partially_completed"
    assert view["systems"][0]["status"] == "failed" and view["systems"][0]["attempts"] == 5
    assert "could not finish their part" in mailbox.body(mailbox.to(ANNA)[-1])


def test_unverified_requests_expire_seven_days_after_receipt_and_not_before(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService) -> None:
    received = utcnow() - dt.timedelta(days=30)
    request_id = open_request(intake_service, "access", received)
    workflow = WorkflowService(ctx)
    assert workflow.expire_unverified(received + dt.timedelta(days=7, microseconds=-1)) == 0
    assert officer_service.get(request_id)["status"] == "pending_verification"
    assert workflow.expire_unverified(received + dt.timedelta(days=7)) == 1
    assert officer_service.get(request_id)["status"] == "expired"
    assert workflow.expire_unverified(received + dt.timedelta(days=8)) == 0  # once


def test_expiry_leaves_verified_requests_alone(
        ctx: PrivacyContext, intake_service: IntakeService, officer_service: OfficerService,
        mailbox: Mailbox) -> None:
    request_id = opened_and_verified(intake_service, mailbox, "restriction")
    assert WorkflowService(ctx).expire_unverified(utcnow() + dt.timedelta(days=30)) == 0
    assert officer_service.get(request_id)["status"] == "completed"
