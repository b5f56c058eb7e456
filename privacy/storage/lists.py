"""``column IN (a list given at execution)`` that PostgreSQL can prepare once.

SQLAlchemy's expanding ``IN`` writes one parameter per value, so each list length is a new
statement text: PostgreSQL parses and plans it every time, and psycopg never prepares it.
:func:`in_list` writes ``column = ANY(:name)`` with one array parameter there (the text
stays the same whatever the length), and the usual expanding ``IN`` elsewhere. Either way
the parameter is given as a Python list.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import NullType


class InList(ColumnElement[Any]):
    """``column`` is one of the values of the list parameter ``name`` (see the module). Its
    type is left null: a boolean type would make SQLite compare the whole test with ``= 1``,
    which no index serves."""

    type = NullType()
    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),  # noqa: RUF012 (SQLAlchemy's own form)
                           ("name", InternalTraversal.dp_string)]

    def __init__(self, column: Any, name: str) -> None:
        self.column = column
        self.name = name


def in_list(column: Any, name: str) -> InList:
    """``column IN :name`` for a list given at execution (one array parameter on PostgreSQL)."""
    return InList(column, name)


@compiles(InList)
def _expanding(element: InList, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw))


@compiles(InList, "postgresql")
def _array(element: InList, compiler: Any, **kw: Any) -> str:
    array = bindparam(element.name, type_=ARRAY(element.column.type))
    return str(compiler.process(element.column == any_(array), **kw))
