"""``sql``: tables in any database SQLAlchemy reaches (the URL is in the variable
``url_env`` names).

Each entry of ``tables`` names a table, its ``key`` column, the personal ``columns`` the
service may read and erase, and how erasure treats a row (``erase: "null"`` blanks the
declared columns, ``erase: delete`` removes the row). ``key_value`` says what the key
column holds: the person's ``email`` (the default; compared case-insensitively) or their
``subject_id``. Names are checked to be plain SQL identifiers when the policy is loaded,
and every value travels as a bound parameter.

An erasure or rectification changes all tables in one transaction: if one table fails,
none is changed, and the task is retried or failed as a whole.
"""
from __future__ import annotations

import datetime as dt
import decimal
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Delete, Engine, Update, create_engine, delete, func, select, update
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql import ColumnElement, TableClause, column, table

from privacy.connectors.base import ConfigError, Connector, ConnectorError, Result, Skip, TaskCall
from privacy.connectors.vendor import field_map
from privacy.policy.file import ConnectorDef

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
ERASE_MODES = ("null", "delete")
KEY_VALUES = ("email", "subject_id")
_SQLITE_SCHEMA_ERRORS = ("no such table", "no such column")


@dataclass(frozen=True)
class TableDef:
    name: str
    key: str
    columns: tuple[str, ...]
    erase: str
    key_value: str = "email"

    def clause(self) -> TableClause:
        return table(self.name, *(column(c) for c in dict.fromkeys((self.key, *self.columns))))


class SqlConnector(Connector):
    type = "sql"
    supported = frozenset({"access", "erasure", "rectification"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        self.setting("url_env", required=True)
        raw_tables = self.setting("tables", required=True)
        if not isinstance(raw_tables, list) or not raw_tables:
            raise ConfigError(f"connectors[{self.name}].tables: a list of {{name, key, columns, erase}}")
        self.tables = tuple(self._table(i, raw) for i, raw in enumerate(raw_tables))
        self.fields = field_map(self.name, {}, self.setting("fields"), IDENTIFIER.match)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    def _table(self, index: int, raw: Any) -> TableDef:
        where = f"connectors[{self.name}].tables[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: a mapping with name, key, columns and erase")
        for key in ("name", "key"):
            if not isinstance(raw.get(key), str) or not IDENTIFIER.match(raw[key]):
                raise ConfigError(f"{where}.{key}: a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)")
        columns = raw.get("columns")
        if not isinstance(columns, list) or not columns or not all(
                isinstance(c, str) and IDENTIFIER.match(c) for c in columns):
            raise ConfigError(f"{where}.columns: a non-empty list of plain SQL identifiers")
        if raw.get("erase") not in ERASE_MODES:
            raise ConfigError(f"{where}.erase: \"null\" or delete")
        if raw.get("erase") == "null" and raw["key"] in columns:
            raise ConfigError(f"{where}.columns: the key column cannot be blanked (erase: \"null\")")
        key_value = raw.get("key_value", "email")
        if key_value not in KEY_VALUES:
            raise ConfigError(f"{where}.key_value: email or subject_id")
        unknown = sorted(set(raw) - {"name", "key", "columns", "erase", "key_value"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: not a table setting")
        return TableDef(raw["name"], raw["key"], tuple(columns), raw["erase"], key_value)

    # --- the database ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine, created on first use (so a missing variable fails the task, not the
        service's start) and shared by all threads."""
        with self._engine_lock:
            if self._engine is None:
                variable = self.setting("url_env")
                url = self.secret("url_env")
                try:
                    self._engine = create_engine(url, pool_pre_ping=True)
                except (ArgumentError, ImportError, ValueError):
                    raise ConnectorError(f"the environment variable {variable} does not hold a usable "
                                         "SQLAlchemy URL", retryable=False) from None
            return self._engine

    def _failure(self, exc: SQLAlchemyError, table_name: str | None) -> ConnectorError:
        """A database error as a :class:`ConnectorError`. Only the error's class is reported:
        drivers quote the offending values (the person's e-mail) in their messages."""
        where = f" on table {table_name}" if table_name else ""
        operational = isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated)
        if operational and str(getattr(exc, "orig", "")).startswith(_SQLITE_SCHEMA_ERRORS):
            operational = False  # SQLite files a missing table or column under OperationalError
        kind = type(exc.orig).__name__ if isinstance(exc, DBAPIError) and exc.orig is not None else type(exc).__name__
        return ConnectorError(f"{self.name} database error{where} ({type(exc).__name__}: {kind})",
                              retryable=operational)

    def _match(self, spec: TableDef, tbl: TableClause, call: TaskCall) -> ColumnElement[bool] | None:
        key = tbl.c[spec.key]
        if spec.key_value == "subject_id":
            return key == call.subject_id if call.subject_id else None
        return func.lower(key) == call.email.lower()

    def _each_table(self, call: TaskCall) -> list[tuple[TableDef, TableClause, ColumnElement[bool]]]:
        matched = []
        for spec in self.tables:
            tbl = spec.clause()
            where = self._match(spec, tbl, call)
            if where is not None:
                matched.append((spec, tbl, where))
        if not matched:
            raise Skip(f"{self.name} is keyed by subject id and the request has none")
        return matched

    # --- work -----------------------------------------------------------------------------

    def run(self, call: TaskCall) -> Result:
        if call.operation not in self.supported:
            raise Skip(f"a {self.type} system does not take {call.operation}")
        work = {"access": self._access, "erasure": self._erase, "rectification": self._rectify}[call.operation]
        current: list[str | None] = [None]
        try:
            with self.engine.begin() as conn:
                return work(conn, call, current)
        except SQLAlchemyError as exc:
            raise self._failure(exc, current[0]) from None

    def _access(self, conn: Connection, call: TaskCall, current: list[str | None]) -> Result:
        data: dict[str, Any] = {}
        for spec, tbl, where in self._each_table(call):
            current[0] = spec.name
            rows = conn.execute(select(*(tbl.c[c] for c in spec.columns)).where(where)).mappings().all()
            if rows:
                data[spec.name] = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
        return Result(outcome="done", data=data) if data else Result(outcome="not_found", data={})

    def _erase(self, conn: Connection, call: TaskCall, current: list[str | None]) -> Result:
        counts = []
        for spec, tbl, where in self._each_table(call):
            current[0] = spec.name
            statement: Delete | Update = (
                delete(tbl).where(where) if spec.erase == "delete"
                else update(tbl).where(where).values({c: None for c in spec.columns}))
            rowcount = conn.execute(statement).rowcount
            if rowcount:
                counts.append(f"{spec.name}: {'deleted' if spec.erase == 'delete' else 'blanked'} {rowcount}")
        if not counts:
            return Result(outcome="not_found")
        return Result(outcome="done", excerpt="; ".join(counts))

    def _rectify(self, conn: Connection, call: TaskCall, current: list[str | None]) -> Result:
        mapping = {**{c: c for spec in self.tables for c in spec.columns}, **self.fields}
        values = {mapping[k]: v for k, v in call.changes.items() if k in mapping and v not in (None, "")}
        plans = [(spec, tbl, where, {c: v for c, v in values.items() if c in spec.columns})
                 for spec, tbl, where in self._each_table(call)]
        plans = [plan for plan in plans if plan[3]]
        if not plans:
            raise Skip(f"{self.name} holds none of the changed fields")
        counts = []
        for spec, tbl, where, changes in plans:
            current[0] = spec.name
            rowcount = conn.execute(update(tbl).where(where).values(changes)).rowcount
            if rowcount:
                counts.append(f"{spec.name}: updated {rowcount}")
        if not counts:
            return Result(outcome="not_found")
        return Result(outcome="done", excerpt="; ".join(counts))

    def close(self) -> None:
        """Close the pooled connections (the engine is made again if the connector is used)."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def test_connection(self) -> str:
        try:
            with self.engine.connect() as conn:
                for spec in self.tables:
                    tbl = spec.clause()
                    conn.execute(select(*(tbl.c[c] for c in (spec.key, *spec.columns))).limit(0)).all()
        except SQLAlchemyError as exc:
            raise self._failure(exc, None) from None
        return f"connected; {len(self.tables)} table(s) readable with their declared columns"


def _jsonable(value: Any) -> Any:
    """A column's value as JSON can hold it (dates as ISO 8601, decimals and ids as text)."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value
