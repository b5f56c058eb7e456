"""The scheduler process (``privacy scheduler``): never inside web workers.

Several scheduler processes may run (one per machine): each runs the connected systems'
tasks, but only the leader (:mod:`retention.leader`) runs the scheduled jobs, and each run
is first claimed in ``job_runs`` for its tick, so that it runs once whatever happens.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Mapping

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from privacy.context import PrivacyContext
from privacy.storage.repositories.jobs import JobRunRepository
from privacy.tasks.runner import TaskRunner
from retention.jobs import JOBS, Job
from retention.leader import Leadership
from retention.schedules import Schedule, schedules

log = logging.getLogger(__name__)

OWNER = f"{socket.gethostname()}:{os.getpid()}"[:64]


def all_jobs(extra: Mapping[str, tuple[Job, dt.timedelta]] | None = None) -> dict[str, tuple[Job, dt.timedelta]]:
    """:data:`retention.jobs.JOBS` and the ``extra`` ones of the application shell."""
    return {**JOBS, **(extra or {})}


def _claim(ctx: PrivacyContext, name: str, tick: dt.datetime, owner: str) -> bool:
    with ctx.database.unit_of_work() as session:
        return JobRunRepository(session).claim(name, tick, owner, ctx.clock())


def _finish(ctx: PrivacyContext, name: str, tick: dt.datetime, count: int | None, error: str | None) -> None:
    with ctx.database.unit_of_work() as session:
        JobRunRepository(session).finish(name, tick, ctx.clock(), count, error)


def run_job(app: Flask, name: str, job: Job, schedule: Schedule | None = None,
            leadership: Leadership | None = None, owner: str = OWNER) -> int | None:
    """Run one job in an app context with the context's clock, if this process leads and
    the run of its current tick is not claimed yet (None when it did not run). Its outcome
    is written to ``job_runs``; a failure is logged and swallowed (-1): it runs again at
    its next tick."""
    ctx: PrivacyContext = app.extensions["privacy"]
    if leadership is not None and not leadership.leading.is_set():
        return None
    now = ctx.clock()
    tick = (schedule or Schedule(every=dt.timedelta(seconds=1))).tick(now)
    with app.app_context():
        try:
            if not _claim(ctx, name, tick, owner):
                return None
            try:
                count = job(ctx, now)
            except Exception as exc:
                log.exception("job %s failed; it runs again at its next time", name)
                ctx.database.session.rollback()
                _finish(ctx, name, tick, None, f"{type(exc).__name__}: {exc}")
                return -1
            if count:
                log.info("job %s: %d", name, count)
            _finish(ctx, name, tick, count, None)
            return count
        finally:
            ctx.database.session.remove()


def build_scheduler(app: Flask, extra: Mapping[str, tuple[Job, dt.timedelta]] | None = None,
                    leadership: Leadership | None = None) -> BlockingScheduler:
    """Every job of :data:`retention.jobs.JOBS`, and ``extra`` ones the application shell
    adds (the rate limiter's clean-up, which lives with the limiter in ``api``), each on
    its schedule and once at start (which claims the current tick: a run missed while no
    scheduler was up is made up for)."""
    ctx: PrivacyContext = app.extensions["privacy"]
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                "misfire_grace_time": 3600})
    jobs = all_jobs(extra)
    for name, schedule in schedules(jobs, ctx.policy).items():
        scheduler.add_job(run_job, schedule.trigger(), args=(app, name, jobs[name][0], schedule, leadership),
                          id=name, name=name, next_run_time=ctx.clock())
    return scheduler


def build_runner(app: Flask, lease_s: float | None = None, poll_s: float = 0.5) -> TaskRunner:
    """The connected systems' task runner, its threads working inside the app's context."""
    return TaskRunner(app.extensions["privacy"], lease_s=lease_s, poll_s=poll_s, scope=app.app_context)
