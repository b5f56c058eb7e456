"""The deadline watch: one mail a day to the officers about what needs them.

It lists the requests due within a week, the overdue ones, and the connected systems
whose tasks failed: request ids, types and deadlines, system names and counts. Nothing
personal (an officer's mailbox is read by more people than the queue). It is mailed at
most once per local day of the controller: a run of the watch job that mailed today (in
``job_runs``) is enough to wait for tomorrow. Nothing to report, no mail.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from privacy.context import PrivacyContext
from privacy.mail.mailer import OutgoingMail
from privacy.mail.outbox import sealed_service_mail
from privacy.requests.deadlines import controller_time_zone
from privacy.requests.states import OPEN
from privacy.storage.repositories.jobs import JobRunRepository
from privacy.storage.repositories.outbox import OutboxRepository
from privacy.storage.repositories.requests import RequestRecord, RequestRepository
from privacy.storage.repositories.tasks import TaskRepository

log = logging.getLogger(__name__)

WATCH_JOB = "deadline_watch"
DUE_WITHIN = dt.timedelta(days=7)


@dataclass
class Digest:
    """What the officers are told: (request id, type, deadline) rows, and failed tasks per system."""

    due_soon: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    overdue: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.due_soon or self.overdue or self.failed)


def officer_address(ctx: PrivacyContext) -> str:
    """``controller.officer_email``, else ``controller.email`` ("" when neither is set)."""
    controller = ctx.policy.controller
    return str(controller.get("officer_email") or controller.get("email") or "")


def _row(request: RequestRecord) -> tuple[str, str, dt.datetime]:
    return request.id, request.type, request.extended_until or request.due_at


def digest(ctx: PrivacyContext, now: dt.datetime) -> Digest:
    """The requests due within a week or overdue, and the systems with failed tasks, as of ``now``."""
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        overdue = requests.queue(now, OPEN, overdue=True)
        soon = requests.queue(now, OPEN, overdue=False, due_before=now + DUE_WITHIN)
        failed = {name: row["failed"] for name, row in TaskRepository(session).summary().items() if row["failed"]}
    return Digest(due_soon=[_row(r) for r in soon], overdue=[_row(r) for r in overdue], failed=failed)


def officer_mail(to: str, found: Digest, ctx: PrivacyContext, now: dt.datetime) -> OutgoingMail:
    """The officers' mail about ``found``: ids, types, deadlines (local), system names and counts."""
    zone = controller_time_zone(ctx.policy.controller)

    def rows(items: list[tuple[str, str, dt.datetime]]) -> str:
        return "\n".join(f"  {rid}  {kind:<14} due {due.astimezone(zone):%Y-%m-%d %H:%M}" for rid, kind, due in items)

    parts = [f"The privacy service's deadline watch, {now.astimezone(zone):%Y-%m-%d}."]
    if found.overdue:
        parts.append(f"Overdue requests ({len(found.overdue)}):\n{rows(found.overdue)}")
    if found.due_soon:
        parts.append(f"Requests due within {DUE_WITHIN.days} days ({len(found.due_soon)}):\n{rows(found.due_soon)}")
    if found.failed:
        parts.append("Connected systems with failed tasks:\n"
                     + "\n".join(f"  {name}: {count} failed" for name, count in sorted(found.failed.items())))
    parts.append(f"The queue: {ctx.public_url}/v1/requests (officer key).")
    subject = f"Privacy requests: {len(found.overdue)} overdue, {len(found.due_soon)} due within a week"
    return OutgoingMail(to=to, subject=subject, text="\n\n".join(parts))


def _start_of_local_day(ctx: PrivacyContext, now: dt.datetime) -> dt.datetime:
    zone = controller_time_zone(ctx.policy.controller)
    return dt.datetime.combine(now.astimezone(zone).date(), dt.time(0), tzinfo=zone).astimezone(dt.UTC)


def watch(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Queue today's mail to the officers if there is something to tell and it was not
    mailed yet today; returns the mails queued (0 or 1)."""
    to = officer_address(ctx)
    if not to:
        log.info("deadline watch: no controller.officer_email or controller.email in the policy; not mailed")
        return 0
    with ctx.database.unit_of_work() as session:
        mailed = JobRunRepository(session).did_something_since(WATCH_JOB, _start_of_local_day(ctx, now))
    if mailed:
        return 0
    found = digest(ctx, now)
    if found.empty():
        return 0
    with ctx.database.unit_of_work() as session:
        OutboxRepository(session).add([sealed_service_mail(ctx.crypto, officer_mail(to, found, ctx, now), now)])
    return 1
