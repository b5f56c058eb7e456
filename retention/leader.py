"""Which scheduler process leads the jobs.

On PostgreSQL every scheduler process keeps one connection of its own (outside the pool:
a pooled connection could be handed back and the lock with it) and polls a session-level
advisory lock; the process that holds it leads. When the connection drops, the server
releases the lock and the process stops leading at once, before another can take over
(a run both might start is still claimed only once: see ``job_runs``). On SQLite one
process runs the scheduler, and it always leads.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

LOCK_ID = 0x70726976616379  # "privacy": one lock per database, whatever the process
POLL_S = 3.0


class Leadership:
    """Whether this process leads; :meth:`poll` (every few seconds, from :meth:`start`'s
    thread) takes the lock when it is free and notices a dropped connection."""

    def __init__(self, url: str, poll_s: float = POLL_S) -> None:
        self.url = url
        self.poll_s = poll_s
        self.is_postgres = url.startswith("postgresql")
        self.leading = threading.Event()
        if not self.is_postgres:
            self.leading.set()
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Take the lock if free, or check the connection that holds it; True while leading."""
        if not self.is_postgres:
            return True
        try:
            conn = self._connection()
            if self.leading.is_set():
                conn.execute(text("SELECT 1"))
            elif conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": LOCK_ID}).scalar():
                log.info("this process now leads the scheduled jobs")
                self.leading.set()
        except Exception as exc:  # the connection dropped: the server has let the lock go
            if self.leading.is_set():
                log.warning("lost the scheduler lock (%s); no longer leading", type(exc).__name__)
            self.leading.clear()
            self._close()
        return self.leading.is_set()

    def _connection(self) -> Connection:
        if self._conn is None:
            if self._engine is None:
                self._engine = create_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                             connect_args={"keepalives": 1, "keepalives_idle": 10,
                                                           "keepalives_interval": 5, "keepalives_count": 2})
            self._conn = self._engine.connect()
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken; closing is best effort
                log.debug("closing the lock connection failed", exc_info=True)

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        self.poll()
        if self.is_postgres:
            self._thread = threading.Thread(target=self._loop, name="scheduler-leader", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def stop(self) -> None:
        """Stop polling and let the lock go (closing the connection releases it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5)
        self.leading.clear()
        self._close()
        if self._engine is not None:
            self._engine.dispose()
