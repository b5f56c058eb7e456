"""Fixtures for the request services, called directly (no HTTP): the application's
context, a signed-up customer, and requests opened and verified through the mailed link."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from api.services import current
from privacy.consent.service import ConsentCommand, ConsentService
from privacy.context import PrivacyContext, utcnow
from privacy.requests.intake import IntakeService, RequestCommand
from privacy.requests.officer import OfficerService
from tests.conftest import SIGNUP, Mailbox

ANNA = "anna@example.se"


@pytest.fixture
def ctx(app: Flask) -> Iterator[PrivacyContext]:
    """The application's context, inside an application context."""
    with app.app_context():
        yield current()


@pytest.fixture
def intake_service(ctx: PrivacyContext) -> IntakeService:
    return IntakeService(ctx)


@pytest.fixture
def officer_service(ctx: PrivacyContext) -> OfficerService:
    return OfficerService(ctx)


def sign_up(ctx: PrivacyContext, email: str = ANNA) -> str:
    """A customer with consents and fields; their subject id."""
    body = json.loads(json.dumps(SIGNUP))
    body["subject"]["email"] = email
    return str(ConsentService(ctx).record(ConsentCommand(**body), utcnow()).body["subject_id"])


def open_request(intake: IntakeService, kind: str, now: dt.datetime | None = None, email: str = ANNA,
                 **extra: Any) -> str:
    """Open a request of ``kind``; its id."""
    cmd = RequestCommand(type=kind, email=email, **extra)
    return str(intake.open(cmd, now or utcnow())["id"])


def mailed_token(mailbox: Mailbox, request_id: str, purpose: str = "verify", email: str = ANNA) -> str:
    """The token of the last ``/verify`` (or ``/download``) link mailed about the request."""
    for msg in reversed(mailbox.to(email)):
        body = mailbox.body(msg)
        if request_id in body and f"/{purpose}?" in body:
            return parse_qs(urlsplit(mailbox.link(msg, f"/{purpose}?")).query)["token"][0]
    raise AssertionError(f"no {purpose} mail for request {request_id}")


def opened_and_verified(intake: IntakeService, mailbox: Mailbox, kind: str, now: dt.datetime | None = None,
                        email: str = ANNA, **extra: Any) -> str:
    """A request opened and verified by its customer; its id."""
    request_id = open_request(intake, kind, now, email, **extra)
    intake.verify(request_id, mailed_token(mailbox, request_id, email=email), now or utcnow())
    return request_id
