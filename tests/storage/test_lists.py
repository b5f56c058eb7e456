"""A list parameter: SQLite reads it through the key, PostgreSQL gets one array parameter."""
from __future__ import annotations

import sqlite3

from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from privacy.storage.lists import in_list

_T = Table("things", MetaData(), Column("id", String(36), primary_key=True), Column("name", String(20)))
BY_IDS = select(_T.c.name).where(in_list(_T.c.id, "ids"))


def test_postgresql_gets_one_array_parameter_whatever_the_length() -> None:
    compiled = BY_IDS.compile(dialect=postgresql.psycopg.dialect())
    assert "things.id = ANY (%(ids)s::VARCHAR(36)[])" in str(compiled)


def test_sqlite_looks_the_list_up_by_the_key() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE things (id VARCHAR(36) PRIMARY KEY, name VARCHAR(20))")
    conn.executemany("INSERT INTO things VALUES (?, ?)", [(str(n), f"n{n}") for n in range(100)])
    sql = str(BY_IDS.params(ids=["3", "5", "8"]).compile(
        dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True, "literal_binds": True}))
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
    assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, plan
    assert sorted(r[0] for r in conn.execute(sql)) == ["n3", "n5", "n8"]
