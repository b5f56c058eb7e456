"""One Prism mock server per vendor description, started once per test session."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.prism import SPECS, PrismServer


def _serve(spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = PrismServer(spec, tmp_path_factory.mktemp("prism"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def hubspot_crm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(SPECS / "hubspot" / "contacts-v3.prism.json", tmp_path_factory)


@pytest.fixture(scope="session")
def hubspot_preferences_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(SPECS / "hubspot" / "subs-v4.prism.json", tmp_path_factory)


@pytest.fixture(scope="session")
def mailchimp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(SPECS / "mailchimp" / "marketing-openapi.prism.json", tmp_path_factory)


@pytest.fixture(scope="session")
def klaviyo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(SPECS / "klaviyo" / "stable.prism.json", tmp_path_factory)
