"""Database handle and engine tuning shared by the service, tests and benchmarks."""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
)

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

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


@contextlib.contextmanager
def unit_of_work() -> Iterator[Any]:
    """A write transaction on the request session: commit on success, roll back on error.

    Any read transaction still open on the session (API-key lookup, say) is ended first
    so that the write transaction starts fresh and, on SQLite, takes its lock at BEGIN.
    """
    session = db.session()
    if session.in_transaction():
        session.commit()
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
