"""The database a service works on: its engine, its session, and how it writes.

A :class:`Database` is built once per application (by ``api`` from Flask-SQLAlchemy's
engine and request-scoped session; given an engine alone, it makes its own scoped session)
and handed to every service by the factory that builds it. Nothing in ``privacy`` reaches a
global database handle.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from privacy.storage.sqlite import checkpoints, write_intent, writer_lock
from privacy.storage.statements import AnyTransaction, RawTransaction

AnySession = Session | scoped_session[Any]


def in_transaction(session: AnySession) -> bool:
    """Whether ``session`` holds a transaction, without opening a scoped session to ask."""
    if isinstance(session, scoped_session):
        return session.registry.has() and session().in_transaction()
    return session.in_transaction()


@contextlib.contextmanager
def read_snapshot(tx: AnyTransaction) -> Iterator[AnyTransaction]:
    """Reads that all see one snapshot of the database. On PostgreSQL (READ COMMITTED, a
    snapshot per statement) a REPEATABLE READ, read-only transaction of its own, rolled
    back at the end; elsewhere ``tx`` itself (a SQLite transaction is one snapshot from
    its first read). Only a session's bind is known: a raw transaction is used as it is."""
    bind = tx.get_bind() if isinstance(tx, Session | scoped_session) else None
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        yield tx
        return
    with Session(bind=bind.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)) as own:
        try:
            yield own
        finally:
            own.rollback()


class Database:
    """An engine and a scoped session on it, with the two ways this service writes.

    ``unit_of_work()`` is an ORM transaction on the session; ``raw_write()`` and
    ``raw_read()`` are short transactions on a pooled DBAPI connection, and
    ``read_then_write()`` a recording's reads and write on one (the sign-up's hot path).
    The repositories (:mod:`privacy.storage.repositories`) run their statements on
    either. Both writes take SQLite's cross-process writer lock and let the checkpoint
    thread know of the write.
    """

    def __init__(self, engine: Engine, session: scoped_session[Any] | None = None) -> None:
        self.engine = engine
        self.session: scoped_session[Any] = session if session is not None else scoped_session(
            sessionmaker(bind=engine))

    @property
    def dialect(self) -> Any:
        return self.engine.dialect

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A write transaction on the session: commit on success, roll back on error.

        Any read transaction still open on the session (API-key lookup, say) is ended first
        so that the write transaction starts fresh and, on SQLite, takes its lock at BEGIN.
        """
        session = self.session()
        if session.in_transaction():
            session.commit()
        lock = writer_lock(self.engine)
        with lock.held() if lock else contextlib.nullcontext():
            token = write_intent.set(True)
            try:
                session.connection()
            finally:
                write_intent.reset(token)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        if lock:
            checkpoints.after_write(lock.database)

    @contextlib.contextmanager
    def raw_connection(self) -> Iterator[Any]:
        """One pooled DBAPI connection for several :meth:`raw_read` and :meth:`raw_write`
        transactions in a row (a recording reads, then writes): one pool checkout and
        check-in instead of one per transaction."""
        conn = self.engine.raw_connection()
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _connection(self, conn: Any | None) -> Iterator[Any]:
        if conn is not None:
            yield conn
        else:
            with self.raw_connection() as own:
                yield own

    @contextlib.contextmanager
    def raw_write(self, conn: Any | None = None) -> Iterator[RawTransaction]:
        """A short write transaction on a pooled DBAPI connection (or on ``conn``, from
        :meth:`raw_connection`): SQLite's writer lock and ``BEGIN IMMEDIATE`` first, commit on
        success, roll back on error."""
        lock = writer_lock(self.engine)
        sqlite = self.engine.dialect.name == "sqlite"
        with self._connection(conn) as conn, lock.held() if lock else contextlib.nullcontext():
            cursor = conn.cursor()
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            try:
                yield RawTransaction(cursor, self.engine.dialect)
                if sqlite:
                    cursor.execute("COMMIT")
                else:
                    conn.commit()
            except BaseException:
                conn.rollback()
                raise
        if lock:
            checkpoints.after_write(lock.database)

    @contextlib.contextmanager
    def raw_read(self, conn: Any | None = None) -> Iterator[RawTransaction]:
        """A read transaction (one snapshot) on a pooled DBAPI connection (or on ``conn``),
        rolled back at the end."""
        sqlite = self.engine.dialect.name == "sqlite"
        with self._connection(conn) as conn:
            cursor = conn.cursor()
            try:
                if sqlite:
                    cursor.execute("BEGIN")
                yield RawTransaction(cursor, self.engine.dialect)
            finally:
                conn.rollback()

    @contextlib.contextmanager
    def read_then_write(self, conn: Any) -> Iterator[ReadThenWrite]:
        """Reads, then (after work with no statement running) at most one write, on ``conn``
        (from :meth:`raw_connection`): a recording's path. See :class:`ReadThenWrite`."""
        if self.engine.dialect.name == "sqlite":
            yield ReadThenWrite(self, conn)
            return
        unit = ReadThenWrite(self, conn, pipelined=True)
        try:
            with conn.driver_connection.pipeline():
                yield unit
                unit.end()
        except BaseException:
            # Leaving the pipeline on an error keeps that error (psycopg drops the "pipeline
            # aborted" of the statements after it); the rollback then runs outside the
            # pipeline, and the caller sees e.g. the unique violation.
            conn.rollback()
            raise

    def dispose(self) -> None:
        """End the session of this thread and close the pool's connections."""
        self.session.remove()
        self.engine.dispose()


class ReadThenWrite:
    """Read transactions and then one write transaction on one pooled connection.

    On SQLite each :meth:`read` is a transaction of its own, rolled back at its end (a
    reader's snapshot pins the WAL), and :meth:`write` is :meth:`Database.raw_write`, with
    the writer lock.

    On PostgreSQL everything runs in one transaction in psycopg's pipeline mode, committed
    when the unit ends: the reads took no locks, and READ COMMITTED gives each statement a
    fresh snapshot, so one transaction is what separate ones would be, in fewer round
    trips. A statement is sent when it is run, and the client waits only when it reads an
    answer (all answers sent before it come back together, see
    :meth:`RawTransaction.later`) and once at the end, for the COMMIT. A database error
    surfaces at the next answer read or at the end, and rolls the whole unit back. A
    sign-up thus takes three round trips: its reads, its writes up to the ledger head's
    lock, and the rest with the COMMIT.
    """

    def __init__(self, database: Database, conn: Any, pipelined: bool = False) -> None:
        self.database = database
        self.conn = conn
        self._cursor = conn.cursor() if pipelined else None
        self._written = False

    def read(self) -> contextlib.AbstractContextManager[RawTransaction]:
        """Reads that see one snapshot on SQLite (statement by statement on PostgreSQL)."""
        if self._cursor is None:
            return self.database.raw_read(self.conn)
        return contextlib.nullcontext(RawTransaction(self._cursor, self.database.dialect))

    def write(self) -> contextlib.AbstractContextManager[RawTransaction]:
        """The unit's one write, committed at its end (on SQLite, at the end of this block)."""
        if self._written:
            raise RuntimeError("a ReadThenWrite writes once")
        self._written = True
        if self._cursor is None:
            return self.database.raw_write(self.conn)
        return contextlib.nullcontext(RawTransaction(self._cursor, self.database.dialect))

    def end(self) -> None:
        """(PostgreSQL) Queue the COMMIT of the write, or the ROLLBACK of reads alone; the
        pipeline's end sends it and waits for the answers."""
        assert self._cursor is not None
        self._cursor.execute("COMMIT" if self._written else "ROLLBACK", prepare=False)
