"""The gunicorn settings the service runs with (``gunicorn.conf.py`` in the repository root)."""
from __future__ import annotations

import datetime as dt
import logging
import runpy
import types
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from api.logs import install_log_guards

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def test_the_access_log_format_leaves_out_query_strings() -> None:
    settings = runpy.run_path(str(CONF))
    assert "%(U)s" in settings["access_log_format"]
    assert "%(r)s" not in settings["access_log_format"] and "%(q)s" not in settings["access_log_format"]


def test_gunicorns_access_log_keeps_no_confirm_token_and_no_query(caplog: pytest.LogCaptureFixture) -> None:
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", runpy.run_path(str(CONF))["access_log_format"])
    logger = Logger(config)
    install_log_guards()
    request = types.SimpleNamespace(method="POST", path="/v1/consents/confirm/SECRETTOKEN.abc", query="email=a@b.se",
                                    uri="/v1/consents/confirm/SECRETTOKEN.abc?email=a@b.se", version=(1, 1),
                                    headers=[])
    response = types.SimpleNamespace(status="200 OK", sent=12, headers=[], response_length=12)
    logger.access_log.addHandler(caplog.handler)  # gunicorn's access logger does not propagate
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logger.access(response, request, {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST",
                                          "RAW_URI": request.uri, "QUERY_STRING": "email=a@b.se",
                                          "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": request.path},
                      dt.timedelta(milliseconds=3))
    logger.access_log.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "gunicorn.access"]
    assert len(lines) == 1 and "/v1/consents/confirm/" in lines[0]
    assert "SECRETTOKEN" not in lines[0] and "a@b.se" not in lines[0]
