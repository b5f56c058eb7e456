"""Database handle and engine tuning shared by the service, tests and benchmarks."""
from __future__ import annotations

import collections
import contextlib
import contextvars
import fcntl
import functools
import logging
import operator
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))

AnySession = Session | scoped_session[Any]


def bind_of(session: AnySession) -> Engine:
    """The engine ``session`` works on. Given Flask-SQLAlchemy's scoped session, this opens
    no session: a request that only reads process caches (a sign-up's API key and purpose
    catalogue) then creates and tears down no ORM session at all."""
    if isinstance(session, scoped_session):
        if not session.registry.has():
            return db.engine  # what its Session.get_bind() answers without a mapper
        session = session()
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def in_transaction(session: AnySession) -> bool:
    """Whether ``session`` holds a transaction, without opening a scoped session to ask."""
    if isinstance(session, scoped_session):
        return session.registry.has() and session().in_transaction()
    return session.in_transaction()


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
_write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)


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
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


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


@contextlib.contextmanager
def unit_of_work() -> Iterator[Any]:
    """A write transaction on the request session: commit on success, roll back on error.

    Any read transaction still open on the session (API-key lookup, say) is ended first
    so that the write transaction starts fresh and, on SQLite, takes its lock at BEGIN.
    """
    session = db.session()
    if session.in_transaction():
        session.commit()
    lock = writer_lock(db.engine)
    with lock.held() if lock else contextlib.nullcontext():
        token = _write_intent.set(True)
        try:
            session.connection()
        finally:
            _write_intent.reset(token)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
    if lock:
        checkpoints.after_write(lock.database)


_time_converters: dict[tuple[Any, ...], Any] = {}


def _bind_processor(type_: Any, dialect: Any) -> Any:
    """The dialect's converter for values of ``type_``; for times, one shared by every
    column of the same type, that remembers its recent answers (a sign-up stores the same
    "now" in about twenty columns of several statements, 3-4 µs each)."""
    impl = type_.dialect_impl(dialect)
    convert = impl.bind_processor(dialect)
    stored = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    if convert is None or not isinstance(stored, DateTime):
        return convert
    key = (type(type_), type(stored), stored.timezone, dialect.name, dialect.driver)
    shared = _time_converters.get(key)
    if shared is None:
        shared = _time_converters[key] = functools.lru_cache(maxsize=64)(convert)
    return shared


class RawStatement:
    """A Core statement compiled once for a dialect and run straight on the DBAPI cursor.

    SQLAlchemy still writes the SQL and converts every value (each bind's own type
    processor, so ``UtcDateTime`` and booleans are stored exactly as Core stores them);
    what is skipped is Core's per-execution bookkeeping, 20-40 µs a statement. That
    matters only where a statement runs inside SQLite's single write lock, which every
    other writer waits for: the sign-up's write transaction.
    """

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self._names = names
        # One C-level lookup of every value, then only the values whose type converts them.
        self._values = (operator.itemgetter(*names) if len(names) > 1
                        else (lambda row, name=names[0]: (row[name],)) if names else (lambda row: ()))
        self._converters = [(i, convert) for i, name in enumerate(names)
                            if (convert := _bind_processor(compiled.binds[name].type, dialect)) is not None]
        # Literals in the statement (``literal(True)``) are binds with their own value.
        self._fixed = {name: bind.effective_value for name, bind in compiled.binds.items()
                       if not bind.required and name in names}
        columns = list(getattr(stmt, "selected_columns", ()))
        self._row = collections.namedtuple("Row", [c.key for c in columns]) if columns else None  # type: ignore[misc]
        self._results = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]

    def row(self, values: Any) -> Any:
        """A fetched tuple as a row with attributes, each value converted by its column type."""
        assert self._row is not None
        return self._row(*(convert(v) if convert else v for convert, v in zip(self._results, values, strict=True)))

    def params(self, row: Any) -> Any:
        """``row``'s values in the statement's order (a list), or by name, converted."""
        if self._fixed:
            row = {**self._fixed, **row}
        values = list(self._values(row))
        for i, convert in self._converters:
            values[i] = convert(values[i])
        return values if self.positional else dict(zip(self._names, values, strict=True))


class RawTransaction:
    """Statements of one write transaction on a DBAPI cursor (see :func:`raw_write`)."""

    def __init__(self, cursor: Any, dialect: Any) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def _statement(self, stmt: Any) -> RawStatement:
        return compiled_statement(stmt, self.dialect)

    def run(self, prepared: Prepared) -> None:
        """Run rows whose values were converted beforehand (outside the write lock)."""
        compiled, params = prepared
        if len(params) == 1:
            self.cursor.execute(compiled.sql, params[0])
        elif params:
            self.cursor.executemany(compiled.sql, params)

    def execute(self, stmt: Any, row: Any = None) -> Any:
        """Run ``stmt`` once, or once per row for a list of rows (as Core's ``execute`` does)."""
        if isinstance(row, list):
            self.executemany(stmt, row)
            return self.cursor
        compiled = self._statement(stmt)
        self.cursor.execute(compiled.sql, compiled.params(row or {}))
        return self.cursor

    def executemany(self, stmt: Any, rows: list[Any]) -> None:
        compiled = self._statement(stmt)
        self.cursor.executemany(compiled.sql, [compiled.params(r) for r in rows])

    def first(self, stmt: Any, row: Any = None) -> Any:
        """The first row (with attributes), or None."""
        values = self.execute(stmt, row).fetchone()
        return None if values is None else self._statement(stmt).row(values)

    def all(self, stmt: Any, row: Any = None) -> list[Any]:
        compiled = self._statement(stmt)
        return [compiled.row(values) for values in self.execute(stmt, row).fetchall()]


_compiled_statements: dict[str, dict[Any, RawStatement]] = {}
Prepared = tuple[RawStatement, list[Any]]


def compiled_statement(stmt: Any, dialect: Any) -> RawStatement:
    """``stmt`` compiled once per dialect (the statements are module-level constants)."""
    cache = _compiled_statements.setdefault(f"{dialect.name}+{dialect.driver}", {})
    compiled = cache.get(stmt)
    if compiled is None:
        compiled = cache[stmt] = RawStatement(stmt, dialect)
    return compiled


def prepare(stmt: Any, rows: list[Any], dialect: Any) -> Prepared:
    """Rows of ``stmt`` with their values converted for the database, ready for :meth:`RawTransaction.run`."""
    compiled = compiled_statement(stmt, dialect)
    return compiled, [compiled.params(row) for row in rows]


@contextlib.contextmanager
def raw_connection(engine: Engine | None = None) -> Iterator[Any]:
    """One pooled DBAPI connection for several :func:`raw_read` and :func:`raw_write`
    transactions in a row (a recording reads, then writes): one pool checkout and
    check-in instead of one per transaction."""
    conn = (engine or db.engine).raw_connection()
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _connection(engine: Engine, conn: Any | None) -> Iterator[Any]:
    if conn is not None:
        yield conn
    else:
        with raw_connection(engine) as own:
            yield own


@contextlib.contextmanager
def raw_write(engine: Engine | None = None, conn: Any | None = None) -> Iterator[RawTransaction]:
    """A short write transaction on a pooled DBAPI connection (or on ``conn``, from
    :func:`raw_connection`): SQLite's writer lock and ``BEGIN IMMEDIATE`` first, commit on
    success, roll back on error."""
    engine = engine or db.engine
    lock = writer_lock(engine)
    sqlite = engine.dialect.name == "sqlite"
    with _connection(engine, conn) as conn, lock.held() if lock else contextlib.nullcontext():
        cursor = conn.cursor()
        if sqlite:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield RawTransaction(cursor, engine.dialect)
        except BaseException:
            conn.rollback()
            raise
        if sqlite:
            cursor.execute("COMMIT")
        else:
            conn.commit()
    if lock:
        checkpoints.after_write(lock.database)


@contextlib.contextmanager
def raw_read(engine: Engine | None = None, conn: Any | None = None) -> Iterator[RawTransaction]:
    """A read transaction (one snapshot) on a pooled DBAPI connection (or on ``conn``),
    rolled back at the end."""
    engine = engine or db.engine
    with _connection(engine, conn) as conn:
        cursor = conn.cursor()
        try:
            if engine.dialect.name == "sqlite":
                cursor.execute("BEGIN")
            yield RawTransaction(cursor, engine.dialect)
        finally:
            conn.rollback()
