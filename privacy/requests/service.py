"""Data-subject requests (GDPR Art. 15-18, 20, 21) from intake to answer, by capability:

- ``intake``: a customer opens a request and verifies it with the mailed link;
- ``workflow``: the verified request's tasks, this service's own work, closing with the
  answer, and the scheduler's retries and expiry of unverified requests;
- ``officer``: the queue, one request's history, extension, refusal, lifting a restriction;
- ``packages``: access packages, built, downloaded and deleted when they expire;
- ``housekeeping``: forgetting closed requests, releasing legal holds;
- ``states`` (statuses and legal moves), ``tokens`` (the mailed links), ``records``
  (loading and sealing a request), ``deadlines``, ``fulfilment``, ``mail``.

:class:`RequestService` only gathers what the request views call, so that they have one
object to ask; scheduled jobs use the capability services directly.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from privacy.context import Packager, PrivacyContext
from privacy.requests.intake import IntakeService, RequestCommand
from privacy.requests.officer import OfficerService
from privacy.requests.states import STATUSES, TASK_STATUSES, TYPES

__all__ = ["STATUSES", "TASK_STATUSES", "TYPES", "RequestCommand", "RequestService"]


class RequestService:
    """The request views' entry point: each method hands over to the service that owns it."""

    def __init__(self, ctx: PrivacyContext, packager: Packager | None = None) -> None:
        self.intake = IntakeService(ctx, packager)
        self.officer = OfficerService(ctx, packager)
        self.packages = self.officer.packages

    def open(self, cmd: RequestCommand, now: dt.datetime) -> dict[str, Any]:
        return self.intake.open(cmd, now)

    def verify(self, request_id: str, token: str, now: dt.datetime) -> dict[str, Any]:
        return self.intake.verify(request_id, token, now)

    def download(self, request_id: str, token: str, now: dt.datetime) -> tuple[str, Iterator[bytes]]:
        return self.packages.download(request_id, token, now)

    def get(self, request_id: str) -> dict[str, Any]:
        return self.officer.get(request_id)

    def queue(self, now: dt.datetime, status: str | None = None, type_: str | None = None,
              overdue: bool | None = None, due_before: dt.datetime | None = None, limit: int = 500
              ) -> list[dict[str, Any]]:
        return self.officer.queue(now, status=status, type_=type_, overdue=overdue, due_before=due_before,
                                  limit=limit)

    def extend(self, request_id: str, days: int, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        return self.officer.extend(request_id, days, reason, actor, now)

    def reject(self, request_id: str, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        return self.officer.reject(request_id, reason, actor, now)

    def lift_restriction(self, request_id: str, reason: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        return self.officer.lift_restriction(request_id, reason, actor, now)

    def package_for_officer(self, request_id: str, actor: str, now: dt.datetime) -> tuple[str, Iterator[bytes]]:
        return self.officer.package_for_officer(request_id, actor, now)
