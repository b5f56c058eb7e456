"""Fixtures of the repository tests: the application's context, without HTTP."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from flask import Flask

from api.services import current
from privacy.context import PrivacyContext
from privacy.ids import new_id
from privacy.storage.repositories.subjects import NewSubject, SubjectRepository


@pytest.fixture
def ctx(app: Flask) -> Iterator[PrivacyContext]:
    """The application's :class:`PrivacyContext`, inside its app context."""
    with app.app_context():
        yield current()
        current().database.session.remove()


NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def new_subject(ctx: PrivacyContext, email: str = "anna@example.se") -> str:
    """A subject stored as a sign-up stores it (prepared rows on a raw write); its id."""
    crypto = ctx.crypto
    subject_id = new_id()
    _, wrapped = crypto.new_data_key(subject_id)
    row = NewSubject(subject_id, crypto.blind_index(email), wrapped, crypto.master_key_id)
    with ctx.database.raw_write() as tx:
        tx.run(SubjectRepository.prepare_new(row, NOW, tx.dialect))
    return subject_id
