"""How the repositories' statements run: in a short transaction straight on a DBAPI cursor
(:class:`RawTransaction`, the sign-up's fast path) or on a unit of work's connection
(:class:`CoreTransaction`). Both offer the same calls (:class:`Transaction`), so that a
repository writes each statement once and any caller can run it."""
from __future__ import annotations

import collections
import functools
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from sqlalchemy import Connection, DateTime
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.types import TypeDecorator

_time_converters: dict[tuple[Any, ...], Any] = {}

_ONE_ROW_INSERT = re.compile(r"(INSERT INTO .+? VALUES )(\(.*\))", re.DOTALL)
_NAMED = re.compile(r"%\((\w+)\)s")
ROWS_PER_INSERT = 200
"""Rows sent in one multi-row INSERT on PostgreSQL (a statement takes at most 65,535
values: 200 rows leave room for 327 columns)."""


def _one_group(text: str) -> bool:
    """Whether ``text`` is one parenthesised group: its first bracket closes at its end (so
    nothing, such as ``ON CONFLICT (...)``, follows the VALUES)."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            return i == len(text) - 1
    return False


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
        # A plain one-row INSERT of named values (psycopg's) can take many rows at once.
        plain = _ONE_ROW_INSERT.fullmatch(self.sql) if not self.positional else None
        self._values_group = (plain.group(1), plain.group(2)) if plain and _one_group(plain.group(2)) else None
        self._many_sql: dict[int, str] = {}
        columns = list(getattr(stmt, "selected_columns", ()))
        self._row = collections.namedtuple("Row", [c.key for c in columns]) if columns else None  # type: ignore[misc]
        self._results = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]

    def row(self, values: Any) -> Any:
        """A fetched tuple as a row with attributes, each value converted by its column type."""
        assert self._row is not None
        return self._row(*(convert(v) if convert else v for convert, v in zip(self._results, values, strict=True)))

    def as_statements(self, params: list[Any]) -> list[tuple[str, dict[str, Any]]] | None:
        """A plain INSERT's rows (each converted by :meth:`params`) as multi-row INSERTs of
        up to :data:`ROWS_PER_INSERT` rows, with their values; None for any other statement."""
        if self._values_group is None:
            return None
        return [self._one_statement(params[i:i + ROWS_PER_INSERT]) for i in range(0, len(params), ROWS_PER_INSERT)]

    def _one_statement(self, params: list[Any]) -> tuple[str, dict[str, Any]]:
        n = len(params)
        if n == 1:
            return self.sql, params[0]
        sql = self._many_sql.get(n)
        if sql is None:
            head, group = self._values_group  # type: ignore[misc]
            sql = head + ", ".join(_NAMED.sub(rf"%(\1__{i})s", group) for i in range(n))
            if n <= 16 or n == ROWS_PER_INSERT:  # a request's few rows, a full batch: kept
                self._many_sql[n] = sql
        return sql, {f"{name}__{i}": value for i, row in enumerate(params) for name, value in row.items()}

    def params(self, row: Any) -> Any:
        """``row``'s values in the statement's order (a list), or by name, converted."""
        if self._fixed:
            row = {**self._fixed, **row}
        values = list(self._values(row))
        for i, convert in self._converters:
            values[i] = convert(values[i])
        return values if self.positional else dict(zip(self._names, values, strict=True))


class Transaction(Protocol):
    """What a repository needs of a transaction: run a statement once or per row, read rows."""

    dialect: Any

    def run(self, prepared: Prepared) -> None: ...

    def execute(self, stmt: Any, row: Any = None) -> Any: ...

    def executemany(self, stmt: Any, rows: list[Any]) -> None: ...

    def first(self, stmt: Any, row: Any = None) -> Any: ...

    def all(self, stmt: Any, row: Any = None) -> list[Any]: ...

    def stream(self, stmt: Any, row: Any, batch: int) -> Iterator[Any]: ...

    def driver_sql(self, sql: str, params: Any) -> list[Any]:
        """The rows of SQL written for the driver (its own parameter style), as it returns them."""


class RawTransaction:
    """Statements of one transaction on a DBAPI cursor (see :meth:`Database.raw_write`)."""

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
            self._many(compiled, params)

    def _many(self, compiled: RawStatement, params: list[Any]) -> None:
        """Several rows of one statement: on PostgreSQL a plain INSERT's rows in statements of
        up to :data:`ROWS_PER_INSERT` rows (each statement costs the client a send and a
        poll, even pipelined), else per row."""
        statements = compiled.as_statements(params) if self.dialect.name == "postgresql" else None
        if statements is None:
            self.cursor.executemany(compiled.sql, params)
            return
        for sql, values in statements:
            self.cursor.execute(sql, values)

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
        self._many(compiled, [compiled.params(r) for r in rows])

    def first(self, stmt: Any, row: Any = None) -> Any:
        """The first row (with attributes), or None."""
        values = self.execute(stmt, row).fetchone()
        return None if values is None else self._statement(stmt).row(values)

    def all(self, stmt: Any, row: Any = None) -> list[Any]:
        compiled = self._statement(stmt)
        return [compiled.row(values) for values in self.execute(stmt, row).fetchall()]

    def stream(self, stmt: Any, row: Any, batch: int) -> Iterator[Any]:
        """The rows of ``stmt``, fetched ``batch`` at a time."""
        compiled = self._statement(stmt)
        cursor = self.execute(stmt, row)
        while values := cursor.fetchmany(batch):
            yield from (compiled.row(v) for v in values)

    def driver_sql(self, sql: str, params: Any) -> list[Any]:
        self.cursor.execute(sql, params)
        return list(self.cursor.fetchall())

    def later(self, sql: str, params: Any = None) -> Callable[[], list[Any]]:
        """Send SQL written for the driver now; the returned function gives its rows. In
        PostgreSQL's pipeline mode (:meth:`Database.read_then_write`) the answer comes back
        with that of the next statement whose rows are read, in the same round trip."""
        if self.dialect.name != "postgresql":  # nothing to gain: read now
            rows = self.driver_sql(sql, () if params is None else params)
            return lambda: rows
        cursor = self.cursor.connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall


class CoreTransaction:
    """A unit of work's session with the calls of a :class:`RawTransaction`.

    Statements run through Core on the session's connection (the transaction it is in at
    each call, so a repository may outlive a commit), which converts values and rows as the
    raw path does. Rows prepared for the raw path (:func:`prepare`) run as driver-level SQL.
    """

    def __init__(self, session: Session | scoped_session[Any]) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect

    @property
    def conn(self) -> Connection:
        return self.session.connection()

    def run(self, prepared: Prepared) -> None:
        compiled, params = prepared
        if params:  # positional values come as lists, which Core takes as tuples
            rows = [p if isinstance(p, dict) else tuple(p) for p in params]
            self.conn.exec_driver_sql(compiled.sql, rows[0] if len(rows) == 1 else rows)

    def execute(self, stmt: Any, row: Any = None) -> Any:
        if isinstance(row, list) and not row:
            return None  # no rows: nothing to run (Core would run the statement once)
        return self.conn.execute(stmt, row if row is not None else {})

    def executemany(self, stmt: Any, rows: list[Any]) -> None:
        if rows:
            self.conn.execute(stmt, rows)

    def first(self, stmt: Any, row: Any = None) -> Any:
        return self.conn.execute(stmt, row or {}).first()

    def all(self, stmt: Any, row: Any = None) -> list[Any]:
        return list(self.conn.execute(stmt, row or {}).all())

    def stream(self, stmt: Any, row: Any, batch: int) -> Iterator[Any]:
        """The rows of ``stmt``, fetched ``batch`` at a time (a server-side cursor on PostgreSQL)."""
        yield from self.conn.execute(stmt.execution_options(yield_per=batch), row)

    def driver_sql(self, sql: str, params: Any) -> list[Any]:
        return list(self.conn.exec_driver_sql(sql, params).cursor.fetchall())


AnyTransaction = Session | scoped_session[Any] | Transaction
"""What a repository is built on: a raw transaction, or a unit of work's session."""


_SESSIONS = (Session, scoped_session)


def as_transaction(tx: AnyTransaction) -> Transaction:
    """``tx`` itself, or the connection of a unit of work's session as a :class:`Transaction`."""
    if type(tx) is RawTransaction:  # the sign-up's, several times a request
        return tx
    return CoreTransaction(tx) if isinstance(tx, _SESSIONS) else tx


def integrity_errors(dialect: Any) -> tuple[type[Exception], ...]:
    """A duplicate key as either path reports it: SQLAlchemy's error (Core) or the driver's (raw)."""
    return IntegrityError, dialect.loaded_dbapi.IntegrityError


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
