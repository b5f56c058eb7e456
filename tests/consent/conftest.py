"""Fixtures of the consent service tests: the application's context, without HTTP."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from api.services import current
from privacy.context import PrivacyContext


@pytest.fixture
def ctx(app: Flask) -> Iterator[PrivacyContext]:
    """The application's :class:`PrivacyContext`, inside its app context."""
    with app.app_context():
        yield current()
        current().database.session.remove()
