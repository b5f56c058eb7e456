"""The scheduler process (``privacy scheduler``): one process, never inside web workers."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from privacy.context import PrivacyContext
from privacy.tasks.runner import TaskRunner
from retention.jobs import JOBS, Job

log = logging.getLogger(__name__)


def run_job(app: Flask, name: str, job: Job) -> int:
    """Run one job in an app context with the context's clock; log and swallow failures."""
    ctx: PrivacyContext = app.extensions["privacy"]
    with app.app_context():
        try:
            count = job(ctx, ctx.clock())
            if count:
                log.info("job %s: %d", name, count)
            return count
        except Exception:
            log.exception("job %s failed; it runs again at its next time", name)
            ctx.database.session.rollback()
            return -1
        finally:
            ctx.database.session.remove()


def build_scheduler(app: Flask, extra: Mapping[str, tuple[Job, dt.timedelta]] | None = None) -> BlockingScheduler:
    """Every job of :data:`retention.jobs.JOBS`, and ``extra`` ones the application shell
    adds (the rate limiter's clean-up, which lives with the limiter in ``api``)."""
    ctx: PrivacyContext = app.extensions["privacy"]
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                "misfire_grace_time": 3600})
    for name, (job, every) in {**JOBS, **(extra or {})}.items():
        scheduler.add_job(run_job, "interval", args=(app, name, job), seconds=every.total_seconds(), id=name,
                          name=name, next_run_time=ctx.clock())
    return scheduler


def build_runner(app: Flask, lease_s: float | None = None, poll_s: float = 0.5) -> TaskRunner:
    """The connected systems' task runner, its threads working inside the app's context."""
    return TaskRunner(app.extensions["privacy"], lease_s=lease_s, poll_s=poll_s, scope=app.app_context)
