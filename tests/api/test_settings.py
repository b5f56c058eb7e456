"""Settings come from the environment; a missing master key is generated once, 0600."""
from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from api.settings import load_settings, master_key_from_instance
from privacy.crypto.keys import parse_master_key


def test_environment_fills_the_settings_and_test_config_wins(tmp_path: Path) -> None:
    env = {"PRIVACY_INSTANCE_DIR": str(tmp_path), "PRIVACY_PUBLIC_URL": "https://privacy.example.se/",
           "PRIVACY_SMTP_URL": "smtp://mail:25"}
    settings = load_settings(env, {"SMTP_URL": None})
    assert settings["INSTANCE_DIR"] == tmp_path.resolve()
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path.resolve() / 'privacy.db'}"
    assert settings["PUBLIC_URL"] == "https://privacy.example.se"
    assert settings["SMTP_URL"] is None


def test_a_missing_master_key_is_generated_once_with_mode_0600_and_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    first = master_key_from_instance(tmp_path)
    second = master_key_from_instance(tmp_path)
    assert first == second and len(parse_master_key(first)) == 32
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    assert sum("PRIVACY_MASTER_KEY is not set" in r.getMessage() for r in caplog.records) == 1
    assert first not in caplog.text  # the key itself is never logged


def test_a_malformed_master_key_stops_start_up(tmp_path: Path) -> None:
    from api import create_app

    with pytest.raises(RuntimeError, match="PRIVACY_MASTER_KEY: master key must be 32 bytes"):
        create_app({"INSTANCE_DIR": str(tmp_path), "MASTER_KEY": "c2hvcnQ="})


@pytest.mark.parametrize("value", ["-1", "six", "9"])
def test_a_wrong_proxy_hop_count_stops_start_up_and_names_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(RuntimeError, match="PRIVACY_PROXY_HOPS: must be a whole number from 0 to 5"):
        load_settings({"PRIVACY_INSTANCE_DIR": str(tmp_path), "PRIVACY_PROXY_HOPS": value}, None)
