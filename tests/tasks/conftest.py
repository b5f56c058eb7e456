"""Fixtures for the fan-out: an application whose policy connects fake systems, a clock the
test moves, the scheduler's task runner, and customers and requests made over HTTP."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from api.services import unit_of_work
from privacy.apikeys import create_key
from privacy.context import utcnow
from privacy.policy.file import DEFAULT_POLICY_FILE
from privacy.tasks.runner import TaskRunner
from retention.scheduler import build_runner
from tests.api.test_requests import open_request, sign_up, verify
from tests.conftest import Mailbox
from tests.fakes import FakeSystem

SECRET = "webhook-secret-for-tests"


class Clock:
    """The application's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def webhook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, "secret_env": "TEST_WEBHOOK_SECRET",
            "retry": {"initial_delay_s": 10, "max_delay_s": 60, "deadline_hours": 1}, "timeout_s": 2, **extra}


class Fanout:
    """An app with connected systems, its client, keys, mailbox, clock and runner."""

    def __init__(self, app: Flask, clock: Clock) -> None:
        self.app, self.clock = app, clock
        self.client: FlaskClient = app.test_client()
        self.mailbox = Mailbox(app)
        with app.app_context(), unit_of_work() as session:
            _, officer = create_key(session, "officer", ["requests:manage"], "test", utcnow())
            _, writer = create_key(session, "form", ["consent:write", "consent:read"], "test", utcnow())
        self.officer = {"Authorization": f"Bearer {officer}"}
        self.writer = {"Authorization": f"Bearer {writer}"}
        self.runner: TaskRunner = build_runner(app, lease_s=30)

    def sign_up(self, email: str = "anna@example.se") -> str:
        return sign_up(self.client, self.writer, email)

    def verified(self, kind: str, email: str = "anna@example.se", **extra: Any) -> str:
        request_id = str(open_request(self.client, kind, email, **extra)["id"])
        verify(self.client, self.mailbox, request_id, email)
        return request_id

    def run(self) -> int:
        """Run every task that is due now, to its end; how many ran."""
        return self.runner.drain()

    def request(self, request_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/v1/requests/{request_id}", headers=self.officer)
        assert answer.status_code == 200, answer.json
        return dict(answer.json)

    def systems(self, request_id: str) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.request(request_id)["systems"]}


@pytest.fixture
def fake() -> Iterator[FakeSystem]:
    system = FakeSystem()
    system.route("POST", "/privacy", (200, {"ok": True}, {}))
    yield system
    system.close()


@pytest.fixture
def fanout_app(make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Callable[..., Fanout]:
    """``fanout_app([connector entries])``: an app whose policy connects those systems."""
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)

    def build(connectors: list[dict[str, Any]], **config: Any) -> Fanout:
        policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
        policy["connectors"] = connectors
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(policy, allow_unicode=True))
        app = make_app(POLICY_FILE=str(path), **config)
        clock = Clock()
        app.extensions["privacy"].clock = clock
        return Fanout(app, clock)

    return build
