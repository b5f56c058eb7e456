"""Rate-limit counters in the service's own database: one count across gunicorn workers and
restarts, with no Redis to run. A storage backend for the ``limits`` library (which
Flask-Limiter uses), registered under the scheme ``privacy-db://``.

Keys name a client IP or an e-mail's blind index, so they are stored only as a keyed MAC:
the table holds no address. Expired counters are deleted by the scheduler.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import time
from typing import Any

import psycopg
from limits.storage import Storage
from sqlalchemy import delete, select, text
from sqlalchemy.exc import SQLAlchemyError

from api.services import current
from privacy.context import PrivacyContext
from privacy.storage.models import RateLimitCounter

_T = RateLimitCounter.__table__

# One statement on both SQLite (3.35+) and PostgreSQL: start a new window when the old one
# is over, else add to it.
INCREMENT = text(
    "INSERT INTO rate_limit_counters (key, hits, expires_at) VALUES (:key, :amount, :expires) "
    "ON CONFLICT (key) DO UPDATE SET "
    "hits = CASE WHEN rate_limit_counters.expires_at <= :now THEN excluded.hits "
    "ELSE rate_limit_counters.hits + excluded.hits END, "
    "expires_at = CASE WHEN rate_limit_counters.expires_at <= :now THEN excluded.expires_at "
    "ELSE rate_limit_counters.expires_at END "
    "RETURNING hits")


def _key(key: str) -> str:
    return current().crypto.link_token("rate-limit", key)


class DatabaseStorage(Storage):
    """Fixed-window counters (Flask-Limiter's default strategy) in ``rate_limit_counters``."""

    STORAGE_SCHEME = ["privacy-db"]  # noqa: RUF012  (the limits library declares it so)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError, sqlite3.Error, psycopg.Error  # writes run on the DBAPI cursor

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with current().database.raw_write() as tx:
            (hits,) = tx.execute(INCREMENT, {"key": _key(key), "amount": amount, "expires": now + expiry,
                                             "now": now}).fetchone()
        return int(hits)

    def get(self, key: str) -> int:
        with current().database.engine.connect() as conn:
            hits = conn.execute(select(_T.c.hits).where(_T.c.key == _key(key), _T.c.expires_at > time.time())
                                ).scalar_one_or_none()
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        with current().database.engine.connect() as conn:
            expires = conn.execute(select(_T.c.expires_at).where(_T.c.key == _key(key))).scalar_one_or_none()
        return float(expires) if expires is not None else time.time()

    def check(self) -> bool:
        try:
            with current().database.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with current().database.raw_write() as tx:
            return int(tx.execute(delete(_T)).rowcount or 0)

    def clear(self, key: str) -> None:
        with current().database.raw_write() as tx:
            tx.execute(delete(_T).where(_T.c.key == _key(key)))


def purge_expired(ctx: PrivacyContext, now: dt.datetime) -> int:
    """Delete the counters whose window is over (a scheduled job, see ``privacy scheduler``)."""
    with ctx.database.raw_write() as tx:
        return int(tx.execute(delete(_T).where(_T.c.expires_at <= now.timestamp())).rowcount or 0)
