"""SQLite tuning: connection pragmas, explicit BEGIN, a cross-process writer lock and WAL
checkpoints in a thread of the writing process. Nothing here applies to PostgreSQL."""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
)

AUTOCHECKPOINT_PAGES = 20_000
CHECKPOINT_EVERY = 50
"""Writes per process between passive checkpoints (a sign-up adds about 24 pages to the
WAL). Run inside the request every 1000 writes, a checkpoint stalled its worker long
enough to lift the sign-up p99 from 46-89 ms to 130-200 ms, for the same throughput under
gunicorn; run by the checkpoint thread every 50, it costs the requests nothing to wait."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes a WAL file is cut back to when a checkpoint lets SQLite start it afresh."""


class Checkpoints:
    """Passive WAL checkpoints, run by a thread of the writing process every
    ``CHECKPOINT_EVERY`` writes.

    A passive checkpoint copies what it can from the WAL into the database file without
    blocking other readers or writers, and ends with fsyncs. In a thread of its own (sqlite3
    lets go of the GIL while it works) neither the request that reached the quota nor the
    next ones on the same worker wait for them, and nobody in the writer lock's queue does.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._writes = 0
        self._due: set[str] = set()
        self._running = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def after_write(self, database: str) -> None:
        """Count a write to the SQLite file ``database``; every ``CHECKPOINT_EVERY``-th asks
        this process's checkpoint thread to checkpoint it."""
        if self._pid != os.getpid():  # a forked worker counts its own writes, in its own thread
            self._reset()
        self._writes += 1
        if self._writes % CHECKPOINT_EVERY:
            return
        with self._changed:
            self._due.add(database)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until no checkpoint is due or running; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._due and not self._running, timeout)

    def _run(self) -> None:
        # The thread keeps its connection to the last database it checkpointed: opening one
        # costs about 0.5 ms of CPU, the checkpoint of a small WAL itself about 6 µs.
        kept: tuple[str, int, sqlite3.Connection] | None = None
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._due))
                database = self._due.pop()
                self._running = True
            try:
                inode = os.stat(database).st_ino  # a file that is gone is an error here
                if kept is not None and kept[:2] != (database, inode):
                    kept = _close(kept)
                if kept is None:
                    # mode=rw: a database file that is gone is an error, not a new empty file.
                    kept = (database, inode, sqlite3.connect(f"file:{urllib.parse.quote(database)}?mode=rw",
                                                             uri=True, isolation_level=None))
                kept[2].execute("PRAGMA wal_checkpoint(PASSIVE)")
            except (OSError, sqlite3.Error) as exc:  # the next quota tries again; the autocheckpoint is the safety net
                kept = _close(kept)
                log.warning("WAL checkpoint failed: %s", exc)
            finally:
                with self._changed:
                    self._running = False
                    self._changed.notify_all()


def _close(kept: tuple[str, int, sqlite3.Connection] | None) -> tuple[str, int, sqlite3.Connection] | None:
    """Close the checkpoint thread's kept connection, if any; what to keep instead (nothing)."""
    if kept is not None:
        kept[2].close()
    return None


checkpoints = Checkpoints()

# Set while a unit of work that will write is being opened, so that SQLite takes the
# write lock at BEGIN: a deferred transaction that reads first and writes later fails
# with SQLITE_BUSY_SNAPSHOT when another process committed in between.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)


def apply_sqlite_pragmas(dbapi_connection: Any) -> None:
    """Durable-but-fast settings for one SQLite connection (WAL, NORMAL sync, busy wait)."""
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def configure_engine(engine: Engine) -> None:
    """Install SQLite connection settings and explicit BEGIN handling on an engine."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        apply_sqlite_pragmas(dbapi_connection)
        # SQLite checkpoints inside the COMMIT that crosses the threshold, while our writer
        # lock is still held (a 5-10 ms fsync every few dozen sign-ups that every other
        # writer waits out). Checkpoints run in a thread instead (see Checkpoints); this
        # threshold (far above what CHECKPOINT_EVERY leaves) is only the safety net.
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        dbapi_connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write_intent.get() else "BEGIN")


class WriterLock:
    """Serialises SQLite writers across processes with ``flock`` on a file beside the database.

    SQLite's own busy handler polls with sleeps of 1 to 100 ms, so two gunicorn workers that
    meet at the write lock lose far more time sleeping than writing. A blocking ``flock`` is
    woken by the kernel the moment the other writer is done. A thread lock covers threads
    of one process (flock is held per open file, not per thread). Not used on PostgreSQL,
    whose row locks already wait without polling.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = database + ".writelock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


_writer_locks: dict[str, WriterLock] = {}


def writer_lock(engine: Engine) -> WriterLock | None:
    """The cross-process writer lock of a file-backed SQLite engine, else None."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    lock = _writer_locks.get(engine.url.database)
    if lock is None:
        lock = _writer_locks.setdefault(engine.url.database, WriterLock(engine.url.database))
    return lock
