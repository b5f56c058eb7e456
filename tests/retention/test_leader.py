"""Two ``privacy scheduler`` processes on one database: one leads the jobs, each tick runs
once; when the leader stops (SIGTERM), the other takes over."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from api.services import current
from privacy.policy.file import DEFAULT_POLICY_FILE
from privacy.storage.repositories.jobs import JobRunRecord, JobRunRepository
from retention.leader import LOCK_ID, Leadership
from tests.conftest import MASTER_KEY, PG_URL, PUBLIC_URL

pytestmark = pytest.mark.slow


def _scheduler(app: Flask, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("privacy", path=str(Path(sys.executable).parent)) or "privacy"
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
                      + "\nscheduler: {jobs: {send_mail: {every_s: 1}}}\n", encoding="utf-8")
    env = {**os.environ, "PRIVACY_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "PRIVACY_MASTER_KEY": MASTER_KEY, "PRIVACY_POLICY_FILE": str(policy), "PRIVACY_PUBLIC_URL": PUBLIC_URL,
           "PRIVACY_INSTANCE_DIR": str(tmp_path / name), "PRIVACY_LEADER_POLL_S": "0.5"}
    with open(tmp_path / f"{name}.log", "ab") as log:
        return subprocess.Popen([exe, "scheduler"], env=env, stdout=log, stderr=log)


def _runs(app: Flask) -> list[JobRunRecord]:
    with app.app_context():
        try:
            return JobRunRepository(current().database.session).of_job("send_mail")
        finally:
            current().database.session.remove()


def _wait(predicate: Callable[[], Any], timeout_s: float) -> bool:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.mark.skipif(not PG_URL, reason="the leader lock is PostgreSQL's (PRIVACY_TEST_DATABASE_URL)")
def test_one_leader_runs_each_tick_once_and_the_other_takes_over(app: Flask, tmp_path: Path) -> None:
    first, second = _scheduler(app, tmp_path, "first"), _scheduler(app, tmp_path, "second")
    logs = lambda: "".join(p.read_text() for p in tmp_path.glob("*.log"))  # noqa: E731
    try:
        assert _wait(lambda: len(_runs(app)) >= 5, 40), logs()
        owners = {r.owner for r in _runs(app)}
        assert len(owners) == 1, owners
        leader, follower = (first, second) if owners.pop().endswith(f":{first.pid}") else (second, first)
        assert logs().count("now leads the scheduled jobs") == 1
        assert _stop(leader) == 0
        assert _wait(lambda: any(r.owner.endswith(f":{follower.pid}") for r in _runs(app)), 30), logs()
    finally:
        for process in (first, second):
            _stop(process)
    runs = _runs(app)
    assert len({r.tick for r in runs}) == len(runs)
    assert all(r.outcome == "ok" for r in runs), runs
    assert {r.owner.rsplit(":", 1)[1] for r in runs} == {str(first.pid), str(second.pid)}


def test_sigterm_ends_the_scheduler_after_the_job_in_hand(app: Flask, tmp_path: Path) -> None:
    process = _scheduler(app, tmp_path, "only")
    try:
        assert _wait(lambda: len(_runs(app)) >= 2, 40), (tmp_path / "only.log").read_text()
    finally:
        assert _stop(process) == 0, (tmp_path / "only.log").read_text()
    assert all(r.outcome == "ok" for r in _runs(app))


@pytest.mark.skipif(not PG_URL, reason="the leader lock is PostgreSQL's (PRIVACY_TEST_DATABASE_URL)")
def test_a_dropped_lock_connection_ends_the_lead_and_another_takes_it(app: Flask) -> None:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    first, second = Leadership(url), Leadership(url)
    try:
        assert first.poll() and not second.poll()
        assert first.poll() and not second.poll()  # the leader keeps leading
        with app.app_context():
            session = current().database.session
            session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                 "WHERE locktype = 'advisory' AND objid = :low"), {"low": LOCK_ID & 0xFFFFFFFF})
            session.commit()
            session.remove()
        assert not first.poll()  # the connection is gone: no longer leading
        assert second.poll()
        assert not first.poll()  # it reconnects, and follows
    finally:
        first.stop()
        second.stop()
