"""What the fast paths rely on, checked: ``python -m bench.checks`` (also run by ``make bench``).

These are not behaviours a user sees, so they are not unit tests (a refactor may change
them freely); they are the reasons the benchmark figures are what they are, and a
failed check explains a fallen figure before anyone starts a profiler:

- a sign-up whose API key and purpose catalogue are cached opens no ORM session;
- routes without a rate limit never enter Flask-Limiter's per-request check;
- the gunicorn entry point freezes the objects its start built (``gc.freeze``), so full
  collections do not walk them under load;
- the WAL checkpoint thread keeps its connection between checkpoints, and opens a new one
  for a database file replaced at the same path.

Each check prints ``PASS`` or ``FAIL`` with what it saw; the exit status is 1 if any failed.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.requests import service_app
from privacy.crypto.keys import generate_master_key

REPO_ROOT = Path(__file__).resolve().parent.parent
SIGNUP = {
    "subject": {"email": "anna@example.se", "first_name": "Anna", "country": "SE", "birth_date": "1990-04-01"},
    "purposes": {"loyalty_club": True, "marketing_email": True, "profiling": False},
    "notice_version": "2026-11-01",
    "source": {"form": "signup-web", "channel": "web"},
}


@contextlib.contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def bench_app() -> Iterator[tuple[Any, dict[str, str]]]:
    """A migrated service app in a temporary folder, with a key of every scope."""
    from privacy import apikeys

    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp, \
            service_app(Path(tmp), generate_master_key(), migrate=True) as app:
        from api.services import current, now

        with current().database.unit_of_work() as session:
            _, token = apikeys.create_key(session, "bench", list(apikeys.SCOPES), "bench", now())
        yield app, {"Authorization": f"Bearer {token}"}


def sign_up_opens_no_orm_session() -> tuple[bool, str]:
    from api.db import db

    with bench_app() as (app, auth):
        client = app.test_client()
        first = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": "first@example.se"}}
        assert client.post("/v1/consents", json=first, headers=auth).status_code == 201  # fills the caches
        registry = db.session.registry
        opened: list[int] = []
        make = registry.createfunc
        with patched(registry, "createfunc", lambda **kw: opened.append(1) or make(**kw)):
            status = client.post("/v1/consents", json=SIGNUP, headers=auth).status_code
        return status == 201 and not opened, f"status {status}, ORM sessions opened: {len(opened)}"


def unlimited_routes_skip_the_limiter() -> tuple[bool, str]:
    from api.limits import limiter

    with bench_app() as (app, auth):
        client = app.test_client()
        calls: list[int] = []
        original = limiter._check_request_limit
        with patched(limiter, "_check_request_limit", lambda *a, **k: calls.append(1) or original(*a, **k)):
            client.post("/v1/consents/check", json={"purpose": "loyalty_club", "emails": ["a@example.se"]},
                        headers=auth)
            unlimited = len(calls)
            client.post("/v1/requests", json={"type": "access", "email": "a@example.se"})
        return unlimited == 0 and len(calls) == 1, (
            f"limiter checks: {unlimited} for a check, {len(calls) - unlimited} for a request (want 0 and 1)")


def entry_point_freezes_its_start() -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")},
               "PRIVACY_INSTANCE_DIR": tmp, "PRIVACY_MASTER_KEY": generate_master_key(),
               "PRIVACY_DATABASE_URL": f"sqlite:///{Path(tmp) / 'privacy.db'}"}
        code = "import gc, wsgi; print(gc.get_freeze_count())"
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                             timeout=120, check=False)
    frozen = int(out.stdout.strip() or 0) if out.returncode == 0 else 0
    failure = f" ({out.stderr[-200:]})" if out.returncode else ""
    return frozen > 10_000, f"objects frozen at start: {frozen:,}{failure}"


def _wal_database(path: Path, row: int) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (?)", (row,))


def checkpoint_thread_keeps_its_connection() -> tuple[bool, str]:
    from privacy.storage import sqlite as storage_sqlite

    opened: list[str] = []
    connect: Callable[..., Any] = sqlite3.connect

    def counted(database: str, *args: Any, **kwargs: Any) -> Any:
        if str(database).startswith("file:"):  # the checkpoint thread's connections
            opened.append(database)
        return connect(database, *args, **kwargs)

    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp, \
            patched(storage_sqlite, "CHECKPOINT_EVERY", 1), patched(storage_sqlite.sqlite3, "connect", counted):
        path = Path(tmp) / "kept.db"
        _wal_database(path, 0)
        for _ in range(3):
            storage_sqlite.checkpoints.after_write(str(path))
            storage_sqlite.checkpoints.wait()
        kept = len(opened)
        (Path(tmp) / "other.db").write_bytes(b"")  # keeps the first file's inode from being reused
        _wal_database(path, 1)
        storage_sqlite.checkpoints.after_write(str(path))
        storage_sqlite.checkpoints.wait()
    return kept == 1 and len(opened) == 2, (
        f"connections opened: {kept} for three checkpoints, {len(opened) - kept} after the file was replaced "
        "(want 1 and 1)")


CHECKS = {
    "a sign-up opens no ORM session once key and catalogue are cached": sign_up_opens_no_orm_session,
    "routes without limits skip the limiter": unlimited_routes_skip_the_limiter,
    "the gunicorn entry point freezes what its start built": entry_point_freezes_its_start,
    "the checkpoint thread keeps its connection, and renews it for a replaced file":
        checkpoint_thread_keeps_its_connection,
}


def main() -> int:
    failed = 0
    for name, check in CHECKS.items():
        ok, seen = check()
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {seen}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
