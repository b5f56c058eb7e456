"""Fixtures: an application per test on a temporary database (SQLite, or PostgreSQL).

With ``PRIVACY_TEST_DATABASE_URL`` set (``.ci/run`` does), every test runs against that
PostgreSQL database, migrated once per session and emptied between tests (but for the
ledger heads the migrations make, put back as they were); otherwise
each test gets its own SQLite file, copied from a template migrated once per session.
"""
from __future__ import annotations

import base64
import email
import email.policy
import os
import re
import shutil
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, inspect, text

from api import create_app
from api.db import db
from api.services import current, unit_of_work
from privacy.apikeys import create_key
from privacy.context import utcnow
from retention.jobs import send_mail

PG_URL = os.environ.get("PRIVACY_TEST_DATABASE_URL")
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
PUBLIC_URL = "http://privacy.test"

SIGNUP: dict[str, Any] = {
    "subject": {"email": "anna@example.se", "first_name": "Anna", "country": "SE", "birth_date": "1990-04-01"},
    "purposes": {"loyalty_club": True, "marketing_email": True, "profiling": False},
    "notice_version": "2026-11-01",
    "source": {"form": "signup-web", "channel": "web"},
}


def _config(instance: Path, url: str, **extra: Any) -> dict[str, Any]:
    return {"INSTANCE_DIR": str(instance), "DATABASE_URL": url, "MASTER_KEY": MASTER_KEY,
            "PUBLIC_URL": PUBLIC_URL, **extra}


def _upgrade(app: Flask) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        db.engine.dispose()


class Database:
    """Hands each test an empty, migrated database."""

    def __init__(self, tmp_factory: pytest.TempPathFactory) -> None:
        self.is_postgres = bool(PG_URL)
        root = tmp_factory.mktemp("template")
        if self.is_postgres:
            assert PG_URL is not None
            self.url = PG_URL
            engine = create_engine(PG_URL)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            engine.dispose()
            _upgrade(create_app(_config(root, PG_URL)))
            engine = create_engine(PG_URL)
            self.tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
            with engine.connect() as conn:  # the ledger's shard heads, which migration 0011 makes
                self.heads = [dict(r) for r in conn.execute(text("SELECT name, seq, hash FROM chain_heads")).mappings()]
            engine.dispose()
        else:
            self.template = root / "template.db"
            _upgrade(create_app(_config(root, f"sqlite:///{self.template}")))

    def fresh(self, tmp_path: Path) -> str:
        if self.is_postgres:
            engine = create_engine(self.url)
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {', '.join(self.tables)} RESTART IDENTITY CASCADE"))
                if self.heads:
                    conn.execute(text("INSERT INTO chain_heads (name, seq, hash) VALUES (:name, :seq, :hash)"),
                                 self.heads)
            engine.dispose()
            return self.url
        target = tmp_path / "privacy.db"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Database:
    return Database(tmp_path_factory)


@pytest.fixture
def make_app(tmp_path: Path, database: Database) -> Iterator[Callable[..., Flask]]:
    """Build an app on this test's database; extra keyword arguments are test config."""
    url = database.fresh(tmp_path)
    apps: list[Flask] = []

    def build(**extra: Any) -> Flask:
        app = create_app(_config(tmp_path / "instance", url, **extra))
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def auth(app: Flask) -> Callable[..., dict[str, str]]:
    """``auth("consent:write")`` gives request headers with a fresh key of those scopes."""

    def make(*scopes: str) -> dict[str, str]:
        with app.app_context(), unit_of_work() as session:
            _, token = create_key(session, "test-" + "-".join(scopes), list(scopes), "test", utcnow())
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def writer(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("consent:write")


@pytest.fixture
def reader(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("consent:read")


@pytest.fixture
def officer(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("requests:manage")


@pytest.fixture
def admin(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("admin")


class Mailbox:
    """The ``.eml`` files the service wrote under ``<instance>/mail``, oldest first."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.directory = Path(app.instance_path) / "mail"

    def deliver(self) -> int:
        """What the scheduler's mail job does: send every mail that is due."""
        with self.app.app_context():
            return send_mail(current(), utcnow())

    def messages(self) -> list[EmailMessage]:
        self.deliver()
        if not self.directory.exists():
            return []
        out = []
        for path in sorted(self.directory.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if m["To"] == address]

    @staticmethod
    def body(msg: EmailMessage) -> str:
        part = msg.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def link(self, msg: EmailMessage, path_fragment: str) -> str:
        for url in re.findall(r"https?://\S+", self.body(msg)):
            if path_fragment in url:
                return url
        raise AssertionError(f"no link containing {path_fragment!r} in the mail")


@pytest.fixture
def mailbox(app: Flask) -> Mailbox:
    return Mailbox(app)


def local_path(url: str) -> str:
    """The path and query of a mailed link, for the test client."""
    assert url.startswith(PUBLIC_URL), url
    return url[len(PUBLIC_URL):]
