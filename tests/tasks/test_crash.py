"""A scheduler killed outright (SIGKILL) in the middle of a fan-out loses nothing: after a
restart every task ends exactly once, its lease having run out."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from api.services import unit_of_work
from privacy.storage.models import AuditEntry, RequestTask, TaskAttempt
from tests.conftest import MASTER_KEY, PUBLIC_URL
from tests.fakes import FakeSystem
from tests.tasks.conftest import SECRET, Fanout, webhook

pytestmark = pytest.mark.slow


def _scheduler(app: Fanout, tmp_path: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("privacy", path=str(Path(sys.executable).parent)) or "privacy"
    url = app.app.config["SQLALCHEMY_DATABASE_URI"]
    env = {**os.environ, "PRIVACY_DATABASE_URL": url, "PRIVACY_MASTER_KEY": MASTER_KEY,
           "PRIVACY_POLICY_FILE": str(tmp_path / "policy.yaml"), "PRIVACY_PUBLIC_URL": PUBLIC_URL,
           "PRIVACY_INSTANCE_DIR": str(tmp_path / "scheduler"), "TEST_WEBHOOK_SECRET": SECRET,
           "PRIVACY_TASK_LEASE_S": "2"}
    with open(tmp_path / "scheduler.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([exe, "scheduler"], env=env, stdout=log, stderr=log)


def _tasks(app: Fanout) -> list[Any]:
    with app.app.app_context(), unit_of_work() as session:
        return list(session.query(RequestTask.id, RequestTask.status).filter(RequestTask.system != "privacy-service"))


def _wait(predicate: Any, timeout_s: float) -> bool:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_scheduler_killed_mid_fan_out_leaves_every_task_ending_exactly_once(
        fanout_app: Any, fake: FakeSystem, tmp_path: Path) -> None:
    fake.delay_s = 0.3
    app: Fanout = fanout_app([webhook(f"sys{n}", fake.url + "/privacy", max_in_flight=2) for n in range(3)])
    for n in range(4):
        app.sign_up(f"member{n}@example.se")
        app.verified("erasure", f"member{n}@example.se")
    first = _scheduler(app, tmp_path)
    try:
        assert _wait(lambda: len(fake.seen) >= 4, 30), (tmp_path / "scheduler.log").read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    unfinished = [t for t in _tasks(app) if t.status not in ("succeeded", "failed")]
    assert unfinished, "the kill came too late to test anything"
    second = _scheduler(app, tmp_path)
    try:
        assert _wait(lambda: all(t.status in ("succeeded", "failed") for t in _tasks(app)), 60), \
            (tmp_path / "scheduler.log").read_text()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    tasks = _tasks(app)
    assert len(tasks) == 12 and all(t.status == "succeeded" for t in tasks)
    with app.app.app_context(), unit_of_work() as session:
        ends = session.query(TaskAttempt.task_id).filter(TaskAttempt.result.in_(("succeeded", "failed"))).all()
        audited = session.query(AuditEntry.details).filter(AuditEntry.action == "task.succeeded").all()
    assert sorted(t.task_id for t in ends) == sorted(t.id for t in tasks)  # each ended once
    assert len(audited) == 12
    # Each system saw every task at least once and may have seen a killed one twice (same id).
    ids = [s.json()["id"] for s in fake.seen]
    assert set(ids) == {t.id for t in tasks}
    for request_id in {s.json()["request_id"] for s in fake.seen}:
        assert app.request(request_id)["status"] == "completed"
