"""Scheduled jobs. Each takes the application's context and ``now`` (so tests can move the
clock), calls one service function, and is idempotent. The rules themselves live in the
services: a job only says when they run."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from privacy.consent.service import ConsentService
from privacy.context import PrivacyContext
from privacy.ledger import anchor_heads
from privacy.mail.outbox import deliver_pending
from privacy.requests.housekeeping import HousekeepingService
from privacy.requests.packages import PackageService
from privacy.requests.watch import watch
from privacy.requests.workflow import WorkflowService
from privacy.retention.sweep import RetentionService
from privacy.tasks.reconcile import Reconciler
from privacy.tasks.service import TaskService
from retention import stopping

log = logging.getLogger(__name__)

Job = Callable[[PrivacyContext, dt.datetime], int]


def _logged(count: int, message: str) -> int:
    """``count``, logged with ``message`` (one ``%d``) when anything was done."""
    if count:
        log.info(message, count)
    return count


def expire_consents(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Append an ``expired`` ledger event for every consent past its purpose's validity."""
    return _logged(ConsentService(ctx).expire(now), "consent expiry: %d consents expired")


def purge_idempotency_keys(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Forget stored answers to Idempotency-Keys older than a day (they hold no personal data)."""
    return ConsentService(ctx).purge_idempotency_records(now)


def purge_confirmations(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Drop the rows of expired double opt-in links; pending consents stay pending (never granted)."""
    return ConsentService(ctx).purge_confirmations(now)


def send_mail(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Deliver the mails waiting in the outbox (double opt-in links, request mails)."""
    return deliver_pending(ctx, now)


def expire_requests(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Requests never verified within the link's 7 days become ``expired``."""
    return _logged(WorkflowService(ctx).expire_unverified(now), "requests: %d unverified requests expired")


def process_requests(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Finish verified requests whose work is pending and close those whose every task has an outcome."""
    return WorkflowService(ctx).process_open(now)


def purge_packages(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Delete access packages past their 7 days."""
    return _logged(PackageService(ctx).purge_packages(now), "requests: %d expired packages deleted")


def forget_closed_requests(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Destroy the keys of requests closed more than 90 days ago (their address and details)."""
    return _logged(HousekeepingService(ctx).forget_closed(now), "requests: details of %d closed requests destroyed")


def release_legal_holds(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Erase what erasures kept for a legal hold once the hold has ended, and destroy its keys."""
    summary = HousekeepingService(ctx).release_legal_holds(now)
    if summary["fields"] or summary["keys"]:
        log.info("legal holds: %d held fields erased, %d hold keys destroyed", summary["fields"], summary["keys"])
    return summary["fields"]


def forget_finished_tasks(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Destroy the keys of failed connector tasks 30 days after they ended (whom they looked for)."""
    return _logged(TaskService(ctx).forget_finished(now), "tasks: keys of %d finished tasks destroyed")


def deadline_watch(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Mail the officers, once a day at most, the requests due within a week, the overdue ones
    and the systems whose tasks failed (hourly, so a day's mail goes out early in the day)."""
    return _logged(watch(ctx, now), "deadline watch: %d mail to the officers queued")


def reconcile_connectors(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Compare each connected system's marketing opt-in state with the ledger and store the
    report (officers read it at ``GET /v1/connectors/reconciliations``); report only, it
    repairs nothing. Returns the drifts found; does nothing without a system to compare."""
    reconciler = Reconciler(ctx)
    if not reconciler.reconcilable():
        return 0
    report = reconciler.run(False, now, actor="scheduler")
    totals = report.totals()
    if totals["drifts"] or totals["errors"]:
        log.warning("reconcile: %d drifts (%d subscribed without our consent), %d look-ups failed; run %s",
                    totals["drifts"], totals["subscribed_but_withdrawn"], totals["errors"], report.id)
    return totals["drifts"]


def ledger_anchor(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Write an audit entry naming every consent ledger head (its shards' and the legacy
    chain's) when one moved since the last: cutting a shard's newest entries together
    with its head row is then caught by verification. Reads the heads without a lock."""
    return 1 if anchor_heads(ctx.database, now) is not None else 0


def retention_sweep(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Enforce the purposes' retention rules and minimise (resumes a sweep left unfinished;
    stops between batches when the scheduler is asked to stop). Returns the subjects
    deleted or anonymised."""
    summary = RetentionService(ctx).run(now, False, "scheduler", should_stop=stopping.stopping.is_set)
    done = summary["subjects"]["deleted"] + summary["subjects"]["anonymised"]
    log.info("retention: %d subjects deleted, %d anonymised, %d fields removed%s", summary["subjects"]["deleted"],
             summary["subjects"]["anonymised"], summary["fields_removed"], " (stopped)" if summary["stopped"] else "")
    return int(done)


JOBS: dict[str, tuple[Job, dt.timedelta]] = {
    "send_mail": (send_mail, dt.timedelta(seconds=5)),
    "expire_consents": (expire_consents, dt.timedelta(hours=1)),
    "purge_idempotency_keys": (purge_idempotency_keys, dt.timedelta(hours=1)),
    "purge_confirmations": (purge_confirmations, dt.timedelta(hours=6)),
    "expire_requests": (expire_requests, dt.timedelta(hours=1)),
    "process_requests": (process_requests, dt.timedelta(minutes=1)),
    "purge_packages": (purge_packages, dt.timedelta(hours=1)),
    "release_legal_holds": (release_legal_holds, dt.timedelta(hours=24)),
    "forget_closed_requests": (forget_closed_requests, dt.timedelta(hours=24)),
    "forget_finished_tasks": (forget_finished_tasks, dt.timedelta(hours=24)),
    "reconcile_connectors": (reconcile_connectors, dt.timedelta(hours=24)),
    "deadline_watch": (deadline_watch, dt.timedelta(hours=1)),
    "ledger_anchor": (ledger_anchor, dt.timedelta(seconds=60)),
    "retention_sweep": (retention_sweep, dt.timedelta(hours=24)),
}
