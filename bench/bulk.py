"""Seeding known subjects over HTTP, and the timed bulk consent check with its SQL baseline.

The bulk scenario first records ``known`` sign-ups through ``POST /v1/consents`` with a
pool of threads (one keep-alive-capable ``http.client`` connection each), then times
``POST /v1/consents/check`` with all inputs in one call. The baseline is the SQL the
check cannot avoid: ``SELECT email_index FROM subjects WHERE email_index IN (...)`` over
blind indexes computed beforehand with the service's own crypto, in chunks of 10,000
parameters, on the service's SQLite file with the service's pragmas.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SQLITE_MAX_PARAMS = 10_000
"""Parameters per IN query in the baseline (under SQLite's variable limit)."""


def signup_body(email: str) -> dict[str, Any]:
    """The sign-up every scenario records: 3 purposes, 4 fields (same as signup.lua)."""
    return {
        "subject": {
            "email": email,
            "first_name": "Anna",
            "country": "SE",
            "birth_date": "1990-04-01",
        },
        "purposes": {"loyalty_club": True, "marketing_email": True, "profiling": False},
        "notice_version": "2026-11-01",
        "source": {"form": "signup-web", "channel": "web"},
    }


class HttpClient:
    """A tiny JSON client for one base URL: one connection per thread, reconnecting as needed."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 120) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def post(self, path: str, payload: Any) -> tuple[int, bytes]:
        """POST ``payload`` as JSON (or ``bytes`` already encoded); the status and raw body (one
        retry on a dropped socket)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request("POST", path, body=body, headers=self.headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class SeedResult:
    """How seeding went."""

    count: int
    seconds: float
    failures: int
    first_failure: str = ""

    @property
    def rate(self) -> float:
        """Sign-ups per second."""
        return self.count / self.seconds if self.seconds else 0.0


def seed_subjects(client: HttpClient, emails: Sequence[str], threads: int = 8) -> SeedResult:
    """Record one sign-up per e-mail through ``POST /v1/consents`` with ``threads`` threads."""
    lock = threading.Lock()
    failures: list[str] = []

    def one(email: str) -> None:
        try:
            status, body = client.post("/v1/consents", signup_body(email))
        except (OSError, http.client.HTTPException) as exc:
            status, body = 0, repr(exc).encode()
        if status != 201:
            with lock:
                failures.append(f"HTTP {status}: {body[:300]!r}")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(one, emails):
            pass
    seconds = time.perf_counter() - start
    return SeedResult(len(emails), seconds, len(failures), failures[0] if failures else "")


@dataclass
class BulkRun:
    """One timed bulk check."""

    seconds: float
    allowed: int
    denied: int


def time_service_check(client: HttpClient, purpose: str, emails: Sequence[str], runs: int) -> list[BulkRun]:
    """Time ``runs`` calls of ``POST /v1/consents/check`` with all ``emails`` in one call.

    Raises :class:`RuntimeError` on a non-200 answer or when the answer does not put
    every input in exactly one list.
    """
    payload = json.dumps({"purpose": purpose, "emails": list(emails)}).encode()  # once, outside the timing
    results: list[BulkRun] = []
    for _ in range(runs):
        start = time.perf_counter()
        status, body = client.post("/v1/consents/check", payload)
        seconds = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"bulk check answered HTTP {status}: {body[:500]!r}")
        answer = json.loads(body)
        allowed, denied = answer.get("allowed", []), answer.get("denied", [])
        if len(allowed) + len(denied) != len(emails):
            raise RuntimeError(
                f"bulk check answered {len(allowed)} allowed + {len(denied)} denied for {len(emails)} inputs"
            )
        results.append(BulkRun(seconds, len(allowed), len(denied)))
    return results


@contextmanager
def scoped_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set the ``PRIVACY_*`` variables of ``env`` for the duration of the block."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("PRIVACY_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("PRIVACY_")})
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("PRIVACY_")]:
            del os.environ[key]
        os.environ.update(saved)


def blind_indexes(env: Mapping[str, str], emails: Sequence[str]) -> tuple[list[bytes], Path]:
    """The service's blind index of every e-mail, and the path of its SQLite file.

    Built in this process with the service's own code (``api.create_app`` and
    the application's ``Crypto``) under the service's environment.
    """
    with scoped_environ(env):
        from sqlalchemy.engine import make_url

        from api import create_app

        app = create_app()
        with app.app_context():
            from api.services import current

            crypto = current().crypto
            index = crypto.blind_indexer()
            indexes = [index(email) for email in emails]
        database = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    if not database:
        raise RuntimeError("the service is not on a SQLite file")
    path = Path(database)
    if not path.is_absolute():
        path = Path(env.get("PRIVACY_INSTANCE_DIR", ".")) / path
    return indexes, path


def time_sql_baseline(db_path: Path, indexes: Sequence[bytes], runs: int) -> list[BulkRun]:
    """Time ``runs`` passes of the plain ``IN`` query over ``indexes`` on the service's file."""
    from privacy.storage.sqlite import apply_sqlite_pragmas

    conn = sqlite3.connect(db_path)
    try:
        apply_sqlite_pragmas(conn)
        results: list[BulkRun] = []
        for _ in range(runs):
            found = 0
            start = time.perf_counter()
            for offset in range(0, len(indexes), SQLITE_MAX_PARAMS):
                chunk = indexes[offset : offset + SQLITE_MAX_PARAMS]
                sql = f"SELECT email_index FROM subjects WHERE email_index IN ({','.join('?' * len(chunk))})"
                found += len(conn.execute(sql, chunk).fetchall())
            seconds = time.perf_counter() - start
            results.append(BulkRun(seconds, found, len(indexes) - found))
        return results
    finally:
        conn.close()


def median_seconds(runs: Sequence[BulkRun]) -> float:
    """The median duration of ``runs``."""
    return statistics.median(run.seconds for run in runs)
