"""The scheduler: schedules from the policy file, each run claimed once in ``job_runs``
across scheduler objects on one database, the jobs listing (CLI and API)."""
from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.services import current
from privacy.context import PrivacyContext
from privacy.policy.file import DEFAULT_POLICY_FILE, PolicyError, load_policy, parse_policy
from privacy.policy.schema import SCHEDULED_JOBS
from privacy.storage.repositories.jobs import JobRunRepository
from retention.jobs import JOBS
from retention.leader import Leadership
from retention.scheduler import build_scheduler, run_job
from retention.schedules import Schedule, schedule_of, schedules

STOCKHOLM = ZoneInfo("Europe/Stockholm")
POLICY_HEAD = DEFAULT_POLICY_FILE.read_text(encoding="utf-8") + "\n"


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def test_every_job_a_policy_can_name_is_a_job() -> None:
    assert set(SCHEDULED_JOBS) == {*JOBS, "purge_rate_limits", "retention_sweep"}


def test_interval_ticks_are_the_same_in_every_process_and_truncated_to_the_second() -> None:
    every = Schedule(every=dt.timedelta(minutes=5))
    assert every.tick(_at("2026-12-02T10:07:31.5+00:00")) == _at("2026-12-02T10:05:00+00:00")
    assert every.next_after(_at("2026-12-02T10:07:31+00:00")) == _at("2026-12-02T10:10:00+00:00")
    assert every.next_after(_at("2026-12-02T10:10:00+00:00")) == _at("2026-12-02T10:15:00+00:00")
    assert every.describe() == "every 5 min"
    assert Schedule(every=dt.timedelta(seconds=5)).describe() == "every 5 s"
    assert Schedule(every=dt.timedelta(hours=1)).describe() == "every 1 h"


def test_a_daily_time_is_local_wall_clock_time_across_daylight_saving() -> None:
    daily = Schedule(at=dt.time(2, 0), zone=STOCKHOLM)
    assert daily.tick(_at("2026-07-01T01:30+02:00")) == _at("2026-06-30T02:00+02:00")
    assert daily.tick(_at("2026-07-01T02:00+02:00")) == _at("2026-07-01T02:00+02:00")
    assert daily.next_after(_at("2026-10-25T12:00+01:00")) == _at("2026-10-26T02:00+01:00")  # after the change
    # 02:00 happens twice on 25 October: both the trigger and the tick take the first one.
    first = _at("2026-10-25T02:00+02:00")
    assert daily.next_after(_at("2026-10-24T12:00+02:00")) == first == daily.tick(first + dt.timedelta(minutes=90))
    assert daily.describe() == "daily at 02:00 Europe/Stockholm"


def test_schedules_come_from_the_policy_file_with_defaults() -> None:
    policy = parse_policy(POLICY_HEAD + "scheduler: {jobs: {retention_sweep: {at: '03:30'},\n"
                                        "                   send_mail: {every_s: 10}}}\n")
    assert schedule_of("send_mail", dt.timedelta(seconds=5), policy).describe() == "every 10 s"
    assert schedule_of("retention_sweep", dt.timedelta(hours=24), policy).describe() == \
        "daily at 03:30 Europe/Stockholm"
    default = load_policy()
    found = schedules({**JOBS, "retention_sweep": (JOBS["send_mail"][0], dt.timedelta(hours=24))}, default)
    assert found["retention_sweep"].describe().startswith("daily at 02:00 ")
    assert found["deadline_watch"].describe() == "every 1 h"
    assert found["send_mail"].describe() == "every 5 s"
    assert "retention_sweep" not in schedules(JOBS, default) or "retention_sweep" in JOBS


@pytest.mark.parametrize(("jobs", "problem"), [
    ("{nightly: {at: '02:00'}}", "scheduler.jobs.nightly.key: 'nightly' is not one of"),
    ("{send_mail: {at: '25:00'}}", "scheduler.jobs.send_mail.value.at: must be a time of day HH:MM"),
    ("{send_mail: {every_s: 0}}", "scheduler.jobs.send_mail.value.every_s:"),
    ("{send_mail: {every_s: 5, at: '02:00'}}", "give either every_s or at"),
    ("{send_mail: {cron: '* * * * *'}}", "scheduler.jobs.send_mail.value.cron:"),
])
def test_a_bad_schedule_is_a_policy_error_naming_its_key(jobs: str, problem: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(POLICY_HEAD + f"scheduler: {{jobs: {jobs}}}\n")
    assert problem in str(err.value)


def _counting(calls: list[dt.datetime], delay_s: float = 0.0) -> Callable[[PrivacyContext, dt.datetime], int]:
    def job(ctx: PrivacyContext, now: dt.datetime) -> int:
        calls.append(now)
        time.sleep(delay_s)
        return 7
    return job


def _runs(app: Flask, job: str) -> list[Any]:
    with app.app_context():
        return JobRunRepository(current().database.session).of_job(job)


def test_two_schedulers_on_one_database_run_a_tick_once(make_app: Callable[..., Flask]) -> None:
    first, second = make_app(), make_app()
    calls: list[dt.datetime] = []
    every = Schedule(every=dt.timedelta(seconds=60))
    results: list[int | None] = []
    threads = [threading.Thread(target=lambda a=app, o=owner: results.append(
        run_job(a, "counting", _counting(calls, 0.2), every, owner=o))) for app, owner in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and sorted(results, key=str) == [7, None]
    [run] = _runs(first, "counting")
    assert (run.outcome, run.count, run.error) == ("ok", 7, None) and run.finished_at is not None


def test_running_schedulers_claim_each_tick_once(make_app: Callable[..., Flask]) -> None:
    apps = [make_app(), make_app()]
    calls: list[dt.datetime] = []
    job = _counting(calls)
    scheds = [build_scheduler(app, extra={"counting": (job, dt.timedelta(seconds=1))}) for app in apps]
    threads = [threading.Thread(target=s.start, daemon=True) for s in scheds]
    for thread in threads:
        thread.start()
    time.sleep(3.2)
    for sched in scheds:
        sched.shutdown(wait=True)
    runs = _runs(apps[0], "counting")
    assert len(runs) >= 2 and len(calls) == len(runs)
    assert len({r.tick for r in runs}) == len(runs)


def test_a_failed_run_is_recorded_with_its_error(app: Flask) -> None:
    def failing(ctx: PrivacyContext, now: dt.datetime) -> int:
        raise RuntimeError("the disk is full")

    assert run_job(app, "failing", failing) == -1
    [run] = _runs(app, "failing")
    assert (run.outcome, run.count, run.error) == ("failed", None, "RuntimeError: the disk is full")


def test_a_follower_runs_no_job(app: Flask) -> None:
    follower = Leadership("postgresql://nowhere.invalid/privacy")
    calls: list[dt.datetime] = []
    assert run_job(app, "counting", _counting(calls), leadership=follower) is None
    assert calls == [] and _runs(app, "counting") == []
    assert Leadership("sqlite:///x.db").poll()  # on SQLite the one scheduler process always leads


def test_jobs_are_listed_by_the_cli_and_the_api(app: Flask, client: FlaskClient, officer: dict[str, str],
                                                reader: dict[str, str]) -> None:
    run_job(app, "expire_consents", JOBS["expire_consents"][0], Schedule(every=dt.timedelta(hours=1)))
    out = app.test_cli_runner().invoke(args=["jobs"])
    assert out.exit_code == 0, out.output
    line = next(li for li in out.output.splitlines() if li.startswith("expire_consents "))
    assert "every 1 h" in line and " ok (0)" in line
    assert "never run" in next(li for li in out.output.splitlines() if li.startswith("send_mail "))
    listed = app.test_cli_runner().invoke(args=["scheduler", "--list"]).output

    def without_next(text: str) -> list[str]:  # the next run may move on between the two calls
        return [li.rsplit(" next ", 1)[0] for li in text.splitlines()]

    assert without_next(listed) == without_next(out.output)
    r = client.get("/v1/jobs", headers=officer)
    assert r.status_code == 200
    jobs = {j["id"]: j for j in r.json["jobs"]}
    assert set(jobs) == {*JOBS, "purge_rate_limits"}
    assert jobs["expire_consents"]["last_outcome"] == "ok" and jobs["expire_consents"]["last_count"] == 0
    assert jobs["send_mail"] == {"id": "send_mail", "schedule": "every 5 s", "last_run_at": None,
                                 "last_outcome": None, "last_count": None, "last_error": None,
                                 "next_run_at": jobs["send_mail"]["next_run_at"]}
    assert client.get("/v1/jobs", headers=reader).status_code == 403
