"""The deadline watch: one mail a day to the officers, with request ids, types and
deadlines and the systems whose tasks failed, nothing personal."""
from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from flask import Flask

from api.services import current
from privacy.context import utcnow
from privacy.requests.intake import IntakeService
from privacy.requests.watch import Digest, officer_mail
from retention.jobs import JOBS, deadline_watch, send_mail
from retention.scheduler import run_job
from retention.schedules import schedules
from tests.conftest import Mailbox
from tests.requests.conftest import ANNA, open_request, sign_up

OFFICERS = "dpo@exempelbutiken.se"  # the bundled policy's controller.email


def _watch(app: Flask, at: dt.datetime) -> int | None:
    """The scheduler's run of the watch at ``at`` (its tick claimed in job_runs)."""
    ctx = app.extensions["privacy"]
    ctx.clock = lambda: at
    try:
        return run_job(app, "deadline_watch", deadline_watch, schedules(JOBS, ctx.policy)["deadline_watch"])
    finally:
        ctx.clock = utcnow


def _deliver(app: Flask, at: dt.datetime) -> None:
    with app.app_context():
        send_mail(current(), at)


def _noon_today() -> dt.datetime:
    """Noon in the controller's zone (Stockholm): an hour later is the same local day."""
    today = utcnow().astimezone(ZoneInfo("Europe/Stockholm")).date()
    return dt.datetime.combine(today, dt.time(12), tzinfo=ZoneInfo("Europe/Stockholm")).astimezone(dt.UTC)


def _open(app: Flask, kind: str, received: dt.datetime) -> str:
    with app.app_context():
        return open_request(IntakeService(current()), kind, received)


def test_the_watch_mails_due_and_overdue_requests_once_a_day(app: Flask, mailbox: Mailbox) -> None:
    start = _noon_today()
    with app.app_context():
        sign_up(current())
    late = _open(app, "access", start - dt.timedelta(days=40))
    soon = _open(app, "erasure", start - dt.timedelta(days=27))
    later = _open(app, "restriction", start)
    mailbox.messages()  # the verification mails, to the customer
    assert _watch(app, start) == 1
    _deliver(app, start)
    [mail] = mailbox.to(OFFICERS)
    body = mailbox.body(mail)
    assert mail["Subject"] == "Privacy requests: 1 overdue, 1 due within a week"
    assert late in body.split("Overdue requests (1):")[1].split("Requests due")[0]
    assert soon in body.split("Requests due within 7 days (1):")[1] and "erasure" in body
    assert later not in body and ANNA not in body and "Anna" not in body
    assert _watch(app, start + dt.timedelta(hours=1)) == 0  # the same day: not again
    assert len(mailbox.to(OFFICERS)) == 1
    assert _watch(app, start + dt.timedelta(days=1)) == 1  # the next day
    _deliver(app, start + dt.timedelta(days=1))
    assert len(mailbox.to(OFFICERS)) == 2


def test_nothing_to_tell_no_mail_and_no_address_no_mail(app: Flask, mailbox: Mailbox) -> None:
    start = _noon_today()
    assert _watch(app, start) == 0
    _open(app, "access", start - dt.timedelta(days=40))
    ctx = app.extensions["privacy"]
    ctx.policy = dataclasses.replace(ctx.policy, controller={**ctx.policy.controller, "email": ""})
    assert _watch(app, start + dt.timedelta(hours=1)) == 0
    ctx.policy = dataclasses.replace(ctx.policy, controller={**ctx.policy.controller,
                                                             "officer_email": "officers@example.se"})
    assert _watch(app, start + dt.timedelta(hours=2)) == 1
    _deliver(app, start + dt.timedelta(hours=2))
    assert len(mailbox.to("officers@example.se")) == 1 and not mailbox.to(OFFICERS)


def test_the_mail_names_systems_with_failed_tasks_and_their_counts(app: Flask) -> None:
    found = Digest(failed={"crm": 2, "shop": 1})
    with app.app_context():
        mail = officer_mail(OFFICERS, found, current(), _noon_today())
    assert "Connected systems with failed tasks:\n  crm: 2 failed\n  shop: 1 failed" in mail.text
    assert mail.subject == "Privacy requests: 0 overdue, 0 due within a week"
