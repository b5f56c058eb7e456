"""The scheduler process (``privacy scheduler``): one process, never inside web workers."""
from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from privacy.context import utcnow
from privacy.storage.database import db
from retention.jobs import JOBS

log = logging.getLogger(__name__)


def run_job(app: Flask, name: str, job: Callable[..., int]) -> int:
    """Run one job in an app context with the current time; log and swallow failures."""
    with app.app_context():
        try:
            count = job(utcnow())
            if count:
                log.info("job %s: %d", name, count)
            return count
        except Exception:
            log.exception("job %s failed; it runs again at its next time", name)
            db.session.rollback()
            return -1
        finally:
            db.session.remove()


def build_scheduler(app: Flask) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                "misfire_grace_time": 3600})
    for name, (job, every) in JOBS.items():
        scheduler.add_job(run_job, "interval", args=(app, name, job), seconds=every.total_seconds(), id=name,
                          name=name, next_run_time=utcnow())
    return scheduler
