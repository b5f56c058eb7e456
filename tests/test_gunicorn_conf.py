"""The gunicorn settings the service runs with (``gunicorn.conf.py`` in the repository root)."""
from __future__ import annotations

import gc
import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def test_a_worker_freezes_its_loaded_objects_out_of_the_collectors_way() -> None:
    settings = runpy.run_path(str(CONF))
    try:
        settings["post_worker_init"](object())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_access_log_format_leaves_out_query_strings() -> None:
    settings = runpy.run_path(str(CONF))
    assert "%(U)s" in settings["access_log_format"]
    assert "%(r)s" not in settings["access_log_format"] and "%(q)s" not in settings["access_log_format"]
