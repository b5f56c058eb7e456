"""Service factories for views and commands: views ask for a service, never build one.

Everything a service needs (database, keys, policy, mailer, clock, package store) is in
the application's :class:`PrivacyContext`, built once by :func:`api.create_app`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from flask import current_app
from sqlalchemy.orm import Session

from privacy.consent.service import ConsentService
from privacy.context import PrivacyContext
from privacy.requests.service import RequestService
from privacy.tasks.service import TaskService


def current() -> PrivacyContext:
    """The context of the application in the current app context."""
    ctx: PrivacyContext = current_app.extensions["privacy"]
    return ctx


def consent_service() -> ConsentService:
    return ConsentService(current())


def request_service() -> RequestService:
    """Every request view's methods on one object (it hands each to the services below)."""
    return RequestService(current())


def task_service() -> TaskService:
    return TaskService(current())


def now() -> dt.datetime:
    return current().clock()


@contextlib.contextmanager
def unit_of_work() -> Iterator[Session]:
    """A write transaction on the application's database (commands, demo data, tests)."""
    with current().database.unit_of_work() as session:
        yield session
