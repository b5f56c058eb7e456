"""The gunicorn settings the service runs with (``gunicorn.conf.py`` in the repository root)."""
from __future__ import annotations

import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def test_the_access_log_format_leaves_out_query_strings() -> None:
    settings = runpy.run_path(str(CONF))
    assert "%(U)s" in settings["access_log_format"]
    assert "%(r)s" not in settings["access_log_format"] and "%(q)s" not in settings["access_log_format"]
