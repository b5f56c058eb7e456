"""What a request can be and how it may move: its types, its statuses, the legal
transitions between them, and :func:`move`, the one place a status changes.

Every move is an audit entry whose target is the request (``request.<status>``), and
those entries are the request's history.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from privacy.errors import Conflict
from privacy.ledger import append_audit
from privacy.storage.repositories.requests import RequestRecord, RequestRepository

TYPES = ("access", "erasure", "rectification", "restriction", "portability", "objection")
STATUSES = ("pending_verification", "verified", "in_progress", "completed", "partially_completed", "rejected",
            "expired")
TRANSITIONS = {
    "pending_verification": ("verified", "expired", "rejected"),
    "verified": ("in_progress", "rejected"),
    "in_progress": ("completed", "partially_completed", "rejected"),
    # An officer retries a system that failed: the request is worked again, its deadline unmoved.
    "partially_completed": ("in_progress",),
}
OPEN = ("pending_verification", "verified", "in_progress")  # the request still has a deadline to meet
CLOSED = tuple(s for s in STATUSES if s not in OPEN)  # answered, refused or expired
TASK_STATUSES = ("pending", "in_progress", "succeeded", "failed", "skipped")
TASK_DONE = ("succeeded", "failed", "skipped")


def is_open(status: str) -> bool:
    """Whether a request in ``status`` still has somewhere to go (and a deadline to meet)."""
    return status in OPEN


def move(session: Session, request: RequestRecord, status: str, actor: str, now: dt.datetime,
         details: dict[str, Any] | None = None) -> None:
    """Move ``request`` to ``status`` with an audit entry; 409 ``invalid_transition`` if the
    table above does not allow it."""
    if status not in TRANSITIONS.get(request.status, ()):
        raise Conflict(f"a request that is {request.status} cannot become {status}",
                       {"status": [request.status]}, code="invalid_transition")
    previous = request.status
    RequestRepository(session).set_status(request, status, now)
    append_audit(session, actor, f"request.{status}", now, target=request.id,
                 details={"from": previous, **(details or {})})
