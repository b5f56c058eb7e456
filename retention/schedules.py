"""When each scheduled job runs: an interval, or a time of day in the controller's zone.

Every process computes the same ticks (an interval counts from a fixed epoch, a daily time
is a local wall-clock time), so that two scheduler processes claim the very same
(job, tick) row in ``job_runs`` and only one of them runs it.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from privacy.context import PrivacyContext, as_json_time
from privacy.policy.file import Policy
from privacy.requests.deadlines import controller_time_zone
from privacy.storage.repositories.jobs import JobRunRepository
from retention.jobs import Job

UTC_ZONE = ZoneInfo("UTC")
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # intervals count from here, in every process
# Jobs whose default is not their registry interval; an entry applies only to a job that exists.
DEFAULT_DAILY = {"retention_sweep": dt.time(2, 0)}


@dataclass(frozen=True)
class Schedule:
    """Every ``every``, or daily at ``at`` in ``zone`` (exactly one of the two is set)."""

    every: dt.timedelta | None = None
    at: dt.time | None = None
    zone: ZoneInfo = UTC_ZONE

    def trigger(self) -> BaseTrigger:
        """The APScheduler trigger firing at this schedule's ticks."""
        if self.at is not None:
            return CronTrigger(hour=self.at.hour, minute=self.at.minute, timezone=self.zone)
        assert self.every is not None
        return IntervalTrigger(seconds=self.every.total_seconds(), start_date=EPOCH, timezone=dt.UTC)

    def tick(self, now: dt.datetime) -> dt.datetime:
        """The latest tick at or before ``now``, to the second: the run a job started at ``now`` claims."""
        if self.at is not None:
            local = now.astimezone(self.zone)
            today = dt.datetime.combine(local.date(), self.at, tzinfo=self.zone).astimezone(dt.UTC)
            if today > now:
                yesterday = local.date() - dt.timedelta(days=1)
                today = dt.datetime.combine(yesterday, self.at, tzinfo=self.zone).astimezone(dt.UTC)
            return today.replace(microsecond=0)
        assert self.every is not None
        steps = (now - EPOCH) // self.every
        return (EPOCH + steps * self.every).replace(microsecond=0)

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first tick after ``now``."""
        fire = self.trigger().get_next_fire_time(None, now)
        assert fire is not None
        fire = fire.astimezone(dt.UTC)
        if fire <= now:  # an interval trigger answers ``now`` itself when it falls on a tick
            assert self.every is not None
            fire += self.every
        return fire

    def describe(self) -> str:
        """``every 5 s``, ``every 1 h`` or ``daily at 02:00 Europe/Stockholm``."""
        if self.at is not None:
            return f"daily at {self.at:%H:%M} {self.zone.key}"
        assert self.every is not None
        seconds = int(self.every.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds % size == 0:
                return f"every {seconds // size} {unit}"
        return f"every {seconds} s"


def schedule_of(name: str, every: dt.timedelta, policy: Policy) -> Schedule:
    """The schedule of job ``name`` whose registry interval is ``every``: the policy file's
    ``scheduler.jobs`` entry if there is one, else its default."""
    zone = controller_time_zone(policy.controller)
    spec: Mapping[str, Any] = policy.schedules.get(name, {})
    if "every_s" in spec:
        return Schedule(every=dt.timedelta(seconds=spec["every_s"]), zone=zone)
    if "at" in spec:
        return Schedule(at=dt.time.fromisoformat(spec["at"]), zone=zone)
    if name in DEFAULT_DAILY:
        return Schedule(at=DEFAULT_DAILY[name], zone=zone)
    return Schedule(every=every, zone=zone)


def schedules(jobs: Mapping[str, tuple[Job, dt.timedelta]], policy: Policy) -> dict[str, Schedule]:
    """Each job's schedule, by name."""
    return {name: schedule_of(name, every, policy) for name, (_, every) in jobs.items()}


def listing(ctx: PrivacyContext, jobs: Mapping[str, tuple[Job, dt.timedelta]], now: dt.datetime
            ) -> list[dict[str, Any]]:
    """Each job by name: its schedule, its newest claimed run (when, outcome, count, error)
    and its next tick, times as JSON strings."""
    with ctx.database.unit_of_work() as session:
        runs = JobRunRepository(session).last_runs()
    out = []
    for name, schedule in sorted(schedules(jobs, ctx.policy).items()):
        run = runs.get(name)
        out.append({"id": name, "schedule": schedule.describe(),
                    "last_run_at": as_json_time(run.started_at) if run else None,
                    "last_outcome": run.outcome if run else None, "last_count": run.count if run else None,
                    "last_error": run.error if run else None,
                    "next_run_at": as_json_time(schedule.next_after(now))})
    return out
