"""The one table that maps environment variables to settings (docs/operations.md lists them)."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from privacy.crypto.keys import generate_master_key

log = logging.getLogger(__name__)

ENVIRONMENT = {
    "PRIVACY_DATABASE_URL": "DATABASE_URL",
    "PRIVACY_INSTANCE_DIR": "INSTANCE_DIR",
    "PRIVACY_MASTER_KEY": "MASTER_KEY",
    "PRIVACY_POLICY_FILE": "POLICY_FILE",
    "PRIVACY_SMTP_URL": "SMTP_URL",
    "PRIVACY_PUBLIC_URL": "PUBLIC_URL",
    "PRIVACY_MAIL_FROM": "MAIL_FROM",
    "PRIVACY_REQUEST_LIMIT_IP": "REQUEST_LIMIT_IP",
    "PRIVACY_REQUEST_LIMIT_EMAIL": "REQUEST_LIMIT_EMAIL",
    "PRIVACY_VERIFY_LIMIT_IP": "VERIFY_LIMIT_IP",
    "PRIVACY_RATELIMIT_STORAGE_URL": "RATELIMIT_STORAGE_URL",
    "PRIVACY_PROXY_HOPS": "PROXY_HOPS",
}

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,
    "INSTANCE_DIR": "./instance",
    "MASTER_KEY": None,
    "POLICY_FILE": None,
    "SMTP_URL": None,
    "PUBLIC_URL": "http://localhost:8000",
    "MAIL_FROM": "Privacy <privacy@localhost>",
    # Flask-Limiter notation: "N per minute|hour|day", several joined with ";".
    "REQUEST_LIMIT_IP": "10 per minute;50 per day",
    "REQUEST_LIMIT_EMAIL": "3 per hour;10 per day",
    "VERIFY_LIMIT_IP": "20 per minute;200 per day",
    "RATELIMIT_STORAGE_URL": "privacy-db://",
    # Reverse proxies in front of the service that append to X-Forwarded-For; 0 trusts none.
    "PROXY_HOPS": 0,
}


MAX_PROXY_HOPS = 5


def load_settings(environ: Mapping[str, str], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults, then the environment, then ``overrides`` (tests) win."""
    settings = dict(DEFAULTS)
    for env, key in ENVIRONMENT.items():
        if environ.get(env):
            settings[key] = environ[env]
    settings.update(overrides or {})
    instance = Path(settings["INSTANCE_DIR"]).resolve()
    settings["INSTANCE_DIR"] = instance
    if not settings["DATABASE_URL"]:
        settings["DATABASE_URL"] = f"sqlite:///{instance / 'privacy.db'}"
    settings["PUBLIC_URL"] = str(settings["PUBLIC_URL"]).rstrip("/")
    hops = str(settings["PROXY_HOPS"]).strip()
    if not hops.isdigit() or int(hops) > MAX_PROXY_HOPS:
        raise RuntimeError(f"PRIVACY_PROXY_HOPS: must be a whole number from 0 to {MAX_PROXY_HOPS}, got {hops!r}")
    settings["PROXY_HOPS"] = int(hops)
    return settings


def _staged_key_file(instance: Path, value: str) -> Path:
    """``value`` written and flushed to disk under a temporary name (mode 0600)."""
    instance.mkdir(parents=True, exist_ok=True)
    tmp = instance / f".master.key.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value.strip() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def master_key_from_instance(instance: Path) -> str:
    """Read the instance's generated master key, creating it once (mode 0600) if missing.

    Two workers starting at once must end with one key: the file is written under a
    temporary name and linked into place, which fails for the loser, who reads the winner's.
    """
    path = instance / "master.key"
    if not path.exists():
        tmp = _staged_key_file(instance, generate_master_key())
        try:
            os.link(tmp, path)
            log.warning("PRIVACY_MASTER_KEY is not set: generated one into %s (mode 0600). "
                        "Back it up: without it no personal field can be read.", path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def replace_instance_master_key(instance: Path, value: str) -> Path:
    """Swap the instance's key file for ``value`` in one rename: a crash leaves the old file
    or the new one, never an empty or half-written key."""
    path = instance / "master.key"
    os.replace(_staged_key_file(instance, value), path)
    return path
