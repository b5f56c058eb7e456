"""The WSGI entry point gunicorn loads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import MASTER_KEY

ROOT = Path(__file__).resolve().parents[2]


def test_the_entry_point_builds_the_app_gunicorn_serves(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")},
           "PRIVACY_INSTANCE_DIR": str(tmp_path), "PRIVACY_MASTER_KEY": MASTER_KEY,
           "PRIVACY_DATABASE_URL": f"sqlite:///{tmp_path / 'privacy.db'}"}
    code = ("import wsgi; from flask import Flask; "
            "print(isinstance(wsgi.app, Flask), wsgi.app.test_client().get('/healthz').json['error']['code'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "not_ready"]  # it answers, and says the schema is missing
